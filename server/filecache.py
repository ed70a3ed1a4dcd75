"""Small files read again only when they change: a stat instead of a read.

qmail-smtpd reads its control files and tcpserver its rules cdb afresh for
every connection (each is a new process), and qmail-lspawn reads
``users/cdb`` for every delivery. A long-running ``serve`` does the same
per connection and per delivery; :func:`read_bytes` keeps each file's bytes
with what identifies its content (device, inode, size, and the times of the
last modification and change, in nanoseconds) and reads the file again
whenever any of them differs, so a change is seen by the next connection,
as with qmail.

A file changed less than :data:`RACY` seconds ago is read every time: two
changes within one tick of the kernel's file clock that leave the size alone
would look alike (git's "racily clean" rule). Its change time then ages past
that, and no later change can go unseen, as every change moves it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Final

#: Seconds a file's change time must lie in the past before its bytes are kept.
RACY: Final = 2.0
#: Files kept at most (a serve reads a dozen; the simulator's many homes
#: would otherwise keep every one).
KEEP: Final = 256

_Signature = tuple[int, int, int, int, int]
_kept: dict[str, tuple[_Signature, bytes]] = {}
_lock = threading.Lock()


def read_bytes(path: str) -> bytes:
    """The whole file at ``path``; OSError (FileNotFoundError) as open() gives it."""
    st = os.stat(path)
    signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    kept = _kept.get(path)
    if kept is not None and kept[0] == signature:
        return kept[1]
    data = _read(path)
    if _now_ns() - st.st_ctime_ns > RACY * 1e9:
        with _lock:
            if len(_kept) >= KEEP:
                _kept.clear()
            _kept[path] = (signature, data)
    return data


def _now_ns() -> int:
    """The real clock, as the kernel's change times are (not a runtime's)."""
    return time.time_ns()


def _read(path: str) -> bytes:
    """The file, with the plain system calls (pathlib's and io's objects cost
    more than a small file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
