"""QMTP and QMQP: qmail-qmtpd, qmail-qmqpd and qmail-qmqpc (netqmail-1.06)."""
