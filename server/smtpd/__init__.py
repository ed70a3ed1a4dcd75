"""qmail-smtpd: receive mail via SMTP (qmail-smtpd.c, qmail-smtpd(8)).

``core`` is the sans-I/O protocol machine, ``policy`` the control-file
decisions, ``address`` qmail's RCPT/MAIL argument parser, ``received`` the
Received line, ``program`` the stdin/stdout program and ``newmrh`` the
morercpthosts compiler.
"""
