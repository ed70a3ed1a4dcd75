"""``lock_ex`` with qmail-local's 30-second limit: the one real-time wait here.

qmail-local's ``mailfile()`` sets ``alarm(30)`` around ``lock_ex(fd)`` (flock
on systems that have it) and dies with "File has been locked for 30 seconds
straight. (#4.3.0)" when the alarm fires. An alarm cannot interrupt one
thread of many, so we poll a non-blocking flock until the deadline. This
module is an I/O edge like server/runtime.py: it reads the monotonic clock
and sleeps, and delivery code receives it as an injectable function.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable

from server.errors import TempFail
from server.local import replies

#: mailfile(): alarm(30).
LOCK_SECONDS = 30.0
_POLL = 0.05

Locker = Callable[[int], bool]


def lock_ex(fd: int, seconds: float = LOCK_SECONDS) -> bool:
    """True when locked, False when flock fails (qmail then writes unlocked)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TempFail(replies.SLOWLOCK) from None
            time.sleep(_POLL)
        except OSError:
            return False
