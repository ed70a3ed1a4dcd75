"""ucspi-tcp's programs (tcpserver, tcprules, tcprulescheck) and qmail's tcp-env."""
