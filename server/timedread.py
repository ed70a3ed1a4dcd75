"""Reading a program's stdin with a time limit, as qmail's timeoutread() does.

qmail-smtpd, qmail-qmtpd and qmail-qmqpd read their input through a buffer
of a fixed size (their ssinbuf) and give up after a timeout; :func:`timed_reader`
is that read for a program of ours, on a real descriptor or, in the simulator,
on an in-memory stream (which never times out).
"""

from __future__ import annotations

import io
import os
import select
from collections.abc import Callable
from typing import BinaryIO


def wait_readable(fds: list[int], timeout: float | None) -> list[int]:
    """Which of ``fds`` can be read (or are at their end) within ``timeout``
    seconds (None: no limit); [] when the time ran out. qmail select()s;
    poll() is the same wait for a descriptor of any number (select cannot
    watch one past FD_SETSIZE, which a long-lived process may reach)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    events = poller.poll(None if timeout is None else max(timeout, 0.0) * 1000)
    return [fd for fd, _ in events]


#: read(timeout): up to the buffer's size of bytes, b"" at the end, None when the time ran out.
Reader = Callable[[float], bytes | None]


def timed_reader(stdin: BinaryIO, size: int) -> Reader:
    """Read up to ``size`` bytes within a timeout; None when the time ran out."""
    try:
        fd = stdin.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        fd = -1
    if fd < 0:
        read1 = getattr(stdin, "read1", stdin.read)
        return lambda timeout: bytes(read1(size))

    def read(timeout: float) -> bytes | None:
        if not wait_readable([fd], timeout):
            return None
        try:
            return os.read(fd, size)
        except OSError:
            return b""  # saferead: an error is the end

    return read
