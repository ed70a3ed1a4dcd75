"""Command lines in and replies out, for qmail-popup and qmail-pop3d.

qmail-popup hands its descriptor 0 to checkpassword and qmail-pop3d, so it
must not read past the PASS/APOP line: bytes it buffered would never reach
qmail-pop3d. (qmail-popup.c reads up to 128 bytes at a time and so loses
commands a client pipelines after PASS; we read exactly one line, which
gives the same replies to every client that waits for the PASS reply.)
A stream with a ``raw`` layer (a real fd 0) is read a byte at a time below
its buffer; any other (BytesIO, the harness) is exact with readline().

On a real descriptor both programs give up after :data:`IDLE_TIMEOUT`
seconds without input, as their timeoutread(1200, ...) does: the line
reads as end of input, and the program exits without a word.
"""

from __future__ import annotations

import select
from typing import BinaryIO

from server.pop3.core import MAX_LINE, Command, LineTooLong

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


def _ready(raw: BinaryIO) -> bool:
    """Input within IDLE_TIMEOUT (always true for something select cannot watch)."""
    try:
        fd = raw.fileno()
    except (OSError, ValueError):
        return True
    readable, _, _ = select.select([fd], [], [], IDLE_TIMEOUT)
    return bool(readable)


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
