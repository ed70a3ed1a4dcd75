"""Every reply qmail-smtpd can write, byte for byte (qmail-smtpd.c, netqmail-1.06).

Replies that carry a variable part (the greeting, the accept line, a
qmail-queue failure) are built by the small functions at the end. Tests name
these constants instead of retyping the strings.
"""

from __future__ import annotations

# die_*(): written, flushed, then the program exits 1.
TIMEOUT = b"451 timeout (#4.4.2)\r\n"
NOMEM = b"421 out of memory (#4.3.0)\r\n"
CONTROL = b"421 unable to read controls (#4.3.0)\r\n"
IPME = b"421 unable to figure out my IP addresses (#4.3.0)\r\n"
STRAY_NEWLINE = b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"

# err_*() and the small commands.
BADMAILFROM = b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n"
NOGATEWAY = b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
UNIMPLEMENTED = b"502 unimplemented (#5.5.1)\r\n"
SYNTAX = b"555 syntax error (#5.5.4)\r\n"
WANT_MAIL = b"503 MAIL first (#5.5.1)\r\n"
WANT_RCPT = b"503 RCPT first (#5.5.1)\r\n"
NOOP = b"250 ok\r\n"
VRFY = b"252 send some mail, i'll try my best\r\n"
QQT_FAILURE = b"451 qqt failure (#4.3.0)\r\n"
HELP = b"214 netqmail home page: http://qmail.org/netqmail\r\n"
RSET = b"250 flushed\r\n"
MAIL_OK = b"250 ok\r\n"
RCPT_OK = b"250 ok\r\n"
GO_AHEAD = b"354 go ahead\r\n"
TOO_MANY_HOPS = b"554 too many hops, this message is looping (#5.4.6)\r\n"
DATABYTES = b"552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n"

# The smtpd-relay-reject patch (err_relay in relay-reject.patch).
RELAY_REJECT = b"553 we don't relay (#5.7.1)\r\n"


def greeting(text: bytes) -> bytes:
    """The banner: ``220 <smtpgreeting> ESMTP`` (main())."""
    return b"220 " + text + b" ESMTP\r\n"


def helo(text: bytes) -> bytes:
    return b"250 " + text + b"\r\n"


def ehlo(text: bytes) -> bytes:
    """EHLO advertises exactly PIPELINING and 8BITMIME (smtp_ehlo)."""
    return b"250-" + text + b"\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


def quit_(text: bytes) -> bytes:
    return b"221 " + text + b"\r\n"


def accepted(when: int, qp: int) -> bytes:
    """acceptmessage(): ``250 ok <seconds since epoch> qp <qmail-queue's pid>``."""
    return b"250 ok %d qp %d\r\n" % (when, qp)


def queue_failure(qqx: str) -> bytes:
    """smtp_data's last lines: a ``D`` result is 554, anything else 451."""
    code = b"554 " if qqx.startswith("D") else b"451 "
    return code + qqx[1:].encode("latin-1") + b"\r\n"
