"""Every reply qmail-popup and qmail-pop3d send, as data.

Texts from qmail-popup.c and qmail-pop3d.c (netqmail-1.06). Both programs
write ``-ERR <text>\\r\\n`` through one ``err()`` and ``+OK \\r\\n`` (note the
space before CRLF) through one ``okay()``.
"""

from __future__ import annotations

OK = b"+OK \r\n"


def err(text: bytes) -> bytes:
    """``err()`` in both programs: ``-ERR text`` and CRLF."""
    return b"-ERR " + text + b"\r\n"


# qmail-popup.c
USAGE = err(b"usage: popup hostname subprogram")
CHILD_CRASHED = err(b"aack, child crashed")
AUTH_FAILED = err(b"authorization failed")
SYNTAX = err(b"syntax error")
WANT_USER = err(b"USER first")
AUTHORIZATION_FIRST = err(b"authorization first")
PIPE = err(b"unable to open pipe")
WRITE_PIPE = err(b"unable to write pipe")
FORK = err(b"unable to fork")
NOMEM = err(b"out of memory")

# qmail-pop3d.c
NO_MAILDIR = err(b"this user has no $HOME/Maildir")
SCAN = err(b"unable to scan $HOME/Maildir")
UNIMPLEMENTED = err(b"unimplemented")
DELETED = err(b"already deleted")
NO_ZERO = err(b"messages are counted from 1")
TOO_BIG = err(b"not that many messages")
NO_SUCH = err(b"unable to open that message")
NO_UNLINK = err(b"unable to unlink all deleted messages")
#: blast(): the end of every RETR/TOP, with the extra blank line qmail-pop3d(8)
#: says it "appends ... to work around serious bugs in certain clients".
END_OF_MESSAGE = b"\r\n.\r\n"
END_OF_LIST = b".\r\n"


def greeting(timestamp: bytes) -> bytes:
    """qmail-popup's banner: ``+OK <pid.time@hostname>``."""
    return b"+OK " + timestamp + b"\r\n"


def number(n: int) -> bytes:
    """``+OK n`` as STAT's and LAST's replies start."""
    return b"+OK " + str(n).encode()
