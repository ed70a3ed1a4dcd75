"""Command lines in and replies out, for qmail-popup and qmail-pop3d.

qmail-popup hands its descriptor 0 to checkpassword and qmail-pop3d. It
reads its input as qmail-popup.c does, up to 128 bytes per read()
(:class:`ChunkReader`): whatever it read past the PASS/APOP line is lost to
qmail-pop3d, so a client that pipelines commands after PASS gets the same
(missing) replies as from netqmail. As a process it reads descriptor 0; in
process (the simulator, the live POP3 service) it reads the stream's
``read1()``, which returns what has arrived: for a BytesIO, everything
(a client that sent it all at once); for the simulator's
:class:`harness.converse.PacedInput`, up to the end of what the client
sent before it waited for a reply. qmail-pop3d, the last
reader, reads a stream with a ``raw`` layer (a real fd 0) a byte at a time
below its buffer; any other is exact with readline().

On a real descriptor both programs give up after :data:`IDLE_TIMEOUT`
seconds without input, as their timeoutread(1200, ...) does: the line
reads as end of input, and the program exits without a word.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

from server.pop3.core import MAX_LINE, Command, LineTooLong
from server.timedread import wait_readable

#: qmail-popup.c and qmail-pop3d.c: timeoutread(1200, ...), "a 20-minute idle timeout".
IDLE_TIMEOUT = 1200.0


def read_line(stream: BinaryIO, *, exact: bool = False) -> bytes | None:
    """The next line through its LF; None at end of input (a partial line is dropped)."""
    raw = getattr(stream, "raw", None) if exact else None
    if raw is not None:
        return _read_raw(raw)
    line = stream.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise LineTooLong(len(line))
    if not line.endswith(b"\n"):
        return None
    return line


#: qmail-popup.c: ``char ssinbuf[128]``, the buffer of its substdio on fd 0.
POPUP_CHUNK = 128


class ChunkReader:
    """Lines read ``chunk`` bytes at a time, as substdio does.

    ``read(n)`` is one read(): at most ``n`` bytes of what has arrived, b""
    at end of input (or after the idle timeout). Bytes past the last line
    returned stay here; the program that hands its input on (qmail-popup to
    checkpassword) loses them, as qmail does.
    """

    def __init__(self, read: Callable[[int], bytes], chunk: int = POPUP_CHUNK) -> None:
        self.read = read
        self.chunk = chunk
        self.buffer = bytearray()

    @classmethod
    def on_fd(cls, fd: int) -> ChunkReader:
        """read() of a descriptor, with timeoutread()'s idle timeout."""

        def read(size: int) -> bytes:
            return os.read(fd, size) if wait_readable([fd], IDLE_TIMEOUT) else b""

        return cls(read)

    @classmethod
    def on_stream(cls, stream: BinaryIO) -> ChunkReader:
        """read1() of a stream: what has arrived, up to the size asked for
        (read() for a stream without one)."""
        read: Callable[[int], bytes] = getattr(stream, "read1", stream.read)
        return cls(read)

    def read_line(self) -> bytes | None:
        """The next line through its LF; None at end of input or after the idle timeout."""
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > MAX_LINE:
                raise LineTooLong(len(self.buffer))
            data = self.read(self.chunk)
            if not data:
                return None
            self.buffer += data
        if end + 1 > MAX_LINE:
            raise LineTooLong(end + 1)
        line = bytes(self.buffer[: end + 1])
        del self.buffer[: end + 1]
        return line

    def read_command(self) -> Command | None:
        line = self.read_line()
        return None if line is None else Command.parse(line)


def _ready(raw: BinaryIO) -> bool:
    """Input within IDLE_TIMEOUT (always true for something select cannot watch)."""
    try:
        fd = raw.fileno()
    except (OSError, ValueError):
        return True
    return bool(wait_readable([fd], IDLE_TIMEOUT))


def _read_raw(raw: BinaryIO) -> bytes | None:
    line = bytearray()
    while True:
        if not _ready(raw):
            return None
        byte = raw.read(1)
        if not byte:
            return None
        line += byte
        if byte == b"\n":
            return bytes(line)
        if len(line) > MAX_LINE:
            raise LineTooLong(len(line))


def read_command(stream: BinaryIO, *, exact: bool = False) -> Command | None:
    line = read_line(stream, exact=exact)
    return None if line is None else Command.parse(line)


def say(stdout: BinaryIO, data: bytes) -> None:
    """Write ``data`` to the client and flush it."""
    stdout.write(data)
    stdout.flush()
