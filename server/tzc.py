"""The C library's localtime() under any ``TZ``, without changing this process's.

date822fmt with the date-localtime patch prints what localtime() gives, and
only the C library reads every ``TZ`` form as qmail's programs would: POSIX
rules (``JST-9``, ``<+0530>-5:30``, ``EST5EDT,M3.2.0,M11.1.0``), zone names,
``:name``, ``:/path``, ``right/`` zones with their leap seconds, and no
``TZ`` at all (/etc/localtime).

Setting ``TZ`` and calling tzset() here would change the zone of the whole
process, under every thread of the live server at once. So:

- when the wanted ``TZ`` is the one this process already runs under (the
  case of a ``bin/`` program, whose environment is its own), time.localtime()
  answers directly. glibc's localtime_r() does not reread ``TZ`` once it has
  read it, so "already runs under" means: the ``TZ`` this module found (and
  made the C library read, with tzset()) when imported, still in the
  environment;
- otherwise a small helper process started with that ``TZ`` (a Python without
  site imports, a few milliseconds to start) answers each second sent to it
  with the fields of its localtime(). One helper serves each ``TZ`` value
  for the life of this process (a scenario uses one or two), a lock keeps
  a question and its answer together, and a forked child starts its own.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from typing import Final

#: Stands for "TZ unset" (no TZ value holds a NUL; an empty TZ means UTC).
UNSET: Final = "\0unset"

Fields = tuple[int, int, int, int, int, int]

_HELPER: Final = (
    "import sys, time\n"
    "for line in sys.stdin:\n"
    "    t = time.localtime(int(line))\n"
    "    sys.stdout.write('%d %d %d %d %d %d\\n' % tuple(t[:6]))\n"
    "    sys.stdout.flush()\n"
)

#: Helpers above this many are closed, oldest first (a TZ per scenario at most).
MAX_HELPERS: Final = 16


class _Helper:
    def __init__(self, tz: str | None) -> None:
        env = {} if tz is None else {"TZ": tz}
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-E", "-c", _HELPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def ask(self, t: int) -> Fields:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            self.proc.stdin.write(b"%d\n" % t)
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        y, mo, d, h, mi, s = (int(w) for w in line.split())
        return (y, mo, d, h, mi, s)

    def close(self) -> None:
        if self.pid != os.getpid():
            return  # a forked child's copy: the parent closes it
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()


_helpers: dict[str, _Helper] = {}
_helpers_lock = threading.Lock()


def _environ_tz() -> str:
    return os.environ.get("TZ", UNSET)


#: The TZ this process's C library runs under (read at import, see above).
PROCESS_TZ: Final = _environ_tz()
time.tzset()


def _own(tz: str) -> bool:
    """Does this process's localtime() already run under ``tz``?"""
    return tz == PROCESS_TZ == _environ_tz()


def _helper(tz: str) -> _Helper:
    with _helpers_lock:
        helper = _helpers.get(tz)
        if helper is None or helper.pid != os.getpid():
            if len(_helpers) >= MAX_HELPERS:
                oldest = next(iter(_helpers))
                _helpers.pop(oldest).close()
            helper = _Helper(None if tz == UNSET else tz)
            _helpers[tz] = helper
        return helper


def localtime(t: int, tz: str) -> Fields:
    """(year, month 1-12, day, hour, minute, second) of localtime(t) under ``TZ=tz``
    (:data:`UNSET`: with ``TZ`` unset). A second of 60 is a leap second."""
    if _own(tz):
        return tuple(time.localtime(t)[:6])  # type: ignore[return-value]
    return _helper(tz).ask(t)


def gmtime(t: int) -> Fields:
    return tuple(time.gmtime(t)[:6])  # type: ignore[return-value]


@atexit.register
def close_all() -> None:
    """Close the helpers (each exits when its input ends)."""
    with _helpers_lock:
        while _helpers:
            _helpers.popitem()[1].close()


__all__ = ["UNSET", "close_all", "gmtime", "localtime"]
