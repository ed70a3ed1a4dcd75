"""Every answer qmail-qmtpd and qmail-qmqpd write besides qmail_close()'s text
(qmail-qmtpd.c, qmail-qmqpd.c, netqmail-1.06). The two per-recipient texts
are written as whole netstrings, length included, as qmail-qmtpd.c has them;
the others are wrapped by :func:`server.qmqp.framing.netstring`.
"""

from __future__ import annotations

# qmail-qmtpd: the message's answer when it overrides qmail_close()'s
UNACCEPTABLE_SENDER = b"Dunacceptable sender (#5.1.7)"
DATABYTES = b"Dsorry, that message size exceeds my databytes limit (#5.3.4)"
# qmail-qmtpd: a recipient's own answer
RCPTHOSTS = b"66:Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1),"
BAD_RECIPIENT = b"46:Dsorry, I can't handle that recipient (#5.1.3),"
# qmail-qmqpd: a sender or recipient with a NUL, or of 1000 bytes or more
BAD_ADDRESS = b"Dsorry, I can't accept addresses like that (#5.1.3)"
