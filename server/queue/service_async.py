"""The queue service's caller in an asyncio server: qmail_open ... qmail_close
without a thread, over connections kept for the next message.

A split ``serve`` runs qmail-smtpd's core as qmaild in one event loop and
queues each message through the queue service (:mod:`server.queue.service`),
which runs as qmailq. :class:`ServicePool` speaks the service's protocol from
the loop itself: a message's frames are written as its pieces come (each
write waits for the socket to drain, so a connection holds about one piece),
and the answer is read with the loop's reader. After an answer of exit 0 the
service waits for another request on the same connection, so the pool keeps
the connection for the next message instead of connecting again (a connect
and an accept each). A connection that failed, or
whose answer was not 0, or whose message was abandoned, is closed: the
service hangs up on it too, and a message abandoned half sent is removed by
the service as qmail-queue's read error (54).

The caller's uid reaches the service from the kernel at connect, as before;
nothing sent on a reused connection can change it. A service that cannot be
reached or goes away is exit 111 for the message, as a qmail-queue that
cannot run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from server.errors import EXIT_TEMP
from server.privsep import FIELD_LENGTH
from server.queue import codes
from server.queue.service import FRAME_LENGTH, frames

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def request_end(envelope: bytes) -> bytes:
    """What ends a request: the message's empty frame, the envelope, its empty frame."""
    return b"".join([FRAME_LENGTH.pack(0), *frames(envelope), FRAME_LENGTH.pack(0)])


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, int]:
    """The service's answer (privsep.pack_fields of two fields): (exit code, qp)."""
    fields = []
    for _ in range(2):
        n = int.from_bytes(await reader.readexactly(FIELD_LENGTH), "big")
        fields.append(int(await reader.readexactly(n)))  # ValueError if not a number
    return fields[0], fields[1]


class ServicePool:
    """Connections to the queue service at ``path``, at most ``keep`` of them idle."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path = path
        self.keep = keep
        self._idle: list[_Connection] = []

    async def open(self) -> ServiceRun:
        """qmail_open(): a run on an idle connection, or on a new one."""
        if self._idle:
            return ServiceRun(self, self._idle.pop())
        try:
            conn = await asyncio.open_unix_connection(os.fspath(self.path))
        except OSError:
            return ServiceRun(self, None)
        return ServiceRun(self, conn)

    def release(self, conn: _Connection) -> None:
        """A connection whose request ended with exit 0: keep it, or close it."""
        if len(self._idle) < self.keep:
            self._idle.append(conn)
        else:
            conn[1].close()

    def close(self) -> None:
        """Close every idle connection (the service forgets them)."""
        idle, self._idle = self._idle, []
        for _reader, writer in idle:
            writer.close()


class ServiceRun:
    """One request on one connection: the message goes out as it is put."""

    def __init__(self, pool: ServicePool, conn: _Connection | None) -> None:
        self.pool = pool
        self.conn = conn

    async def put(self, data: bytes) -> None:
        """qmail_put(): more of the message, in frames, sent before the next read."""
        if self.conn is None or not data:
            return
        writer = self.conn[1]
        try:
            writer.writelines(frames(data))
            await writer.drain()
        except OSError:
            self.abandon()

    async def close(self, envelope: bytes, last: bytes = b"") -> tuple[int, int]:
        """The rest of the message (``last``), the envelope: (exit code, qp).

        A whole message and its envelope go out in one write.
        """
        conn, self.conn = self.conn, None
        if conn is None:
            return EXIT_TEMP, 0
        reader, writer = conn
        try:
            writer.write(b"".join([*frames(last), request_end(envelope)]))
            await writer.drain()
            code, qp = await _read_answer(reader)
        except (OSError, EOFError, ValueError):  # IncompleteReadError is an EOFError
            writer.close()
            return EXIT_TEMP, 0
        if code == codes.OK:
            self.pool.release(conn)
        else:
            writer.close()  # the service hangs up after any other answer
        return code, qp

    def abandon(self) -> None:
        """Hang up: the service removes what it wrote of the message (exit 54)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                conn[1].close()
