"""qmail-queue as a warm service: queue for local callers over a Unix socket.

In a split home qmail-queue is setuid qmailq (``bin/qmail-queue``, the
wrapper of :mod:`server.queue.wrapper`), and every caller pays for starting
an interpreter. ``qmail-sim serve`` queues many messages a second from its
qmail-smtpd, which runs as qmaild: it starts this service instead, a process
already running as qmailq, and qmail-smtpd hands each message to it.

The service learns who is calling the way qmail-queue does, from the kernel:
the peer's uid (SO_PEERCRED) plays qmail-queue.c's getuid(), for the
Received line's wording and the ``u`` record. Nothing else the caller sends
is more than the message and the envelope, so a caller gets exactly what
running qmail-queue would give it. One request is one qmail-queue run,
and the message streams through it as through qmail-queue's pipe:

    request: frames, each an 8-byte length and that many bytes (at most
             MAX_FRAME): the message's, an empty frame, the envelope's, an
             empty frame
    answer:  pack_fields([exit code, qp])

A connection may carry one request after another: after an answer of exit
0 the service waits for the next request on it (the caller's uid is the
same for all of them, the kernel's record of who connected), and after any
other answer it hangs up, as the request may not have been read to its
end. A caller that hangs up between requests ends nothing. Reusing a
connection spares a connect, an accept and a thread per message
(server.queue.service_async keeps such connections for qmail-smtpd).

The service starts the run (pid file, link to mess/) when the request's
first length arrives and writes each frame of the message into ``mess/N``
as it comes, so neither side ever holds a whole message; the envelope is read once
``intd/N`` exists, as qmail-queue reads fd 1. A caller that goes away
before its request ends is qmail-queue reading end of file (54): what was
written is removed. qmail-queue's exit codes carry over unchanged; a
service that is not there (no socket, refused, cut off) is exit 111 for the
caller, as a missing qmail-queue would be, and the queue's ordered steps
mean that nothing is half queued.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Final

from server import privsep
from server.errors import EXIT_TEMP
from server.privsep import QmailIds
from server.programs import ProgramContext
from server.queue import codes
from server.queue.core import QueueFailure, open_message
from server.queue.envelope import Envelope, EnvelopeError, parse_envelope
from server.queue.invoker import invoker_from_uid, make_job

#: The largest frame: what the service holds of a message at a time.
MAX_FRAME: Final = 1 << 20
#: The largest envelope the service reads (it parses an envelope whole);
#: this only stops a runaway caller.
MAX_ENVELOPE: Final = 1 << 31
#: A frame's length, before its bytes.
FRAME_LENGTH = struct.Struct(">Q")
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


def peer_uid(conn: socket.socket) -> int:
    """The connecting process's uid, as the kernel recorded it at connect()."""
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(data)
    return int(uid)


class CutOff(Exception):
    """The request ended early: the caller went away, or sent a bad frame."""


def _read_exact(conn: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = conn.recv(min(n - len(chunks), MAX_FRAME))
        if not chunk:
            raise CutOff
        chunks += chunk
    return bytes(chunks)


def read_frames(conn: socket.socket, first: int | None = None) -> Iterator[bytes]:
    """One part of a request (message or envelope): its frames, up to the empty
    one; ``first`` is the first frame's length when it has been read already."""
    length = first
    while True:
        if length is None:
            (length,) = FRAME_LENGTH.unpack(_read_exact(conn, FRAME_LENGTH.size))
        if length == 0:
            return
        if length > MAX_FRAME:
            raise CutOff
        yield _read_exact(conn, length)
        length = None


def _next_request(conn: socket.socket) -> int | None:
    """The first length of the next request on ``conn``; None if the caller hung up."""
    try:
        head = conn.recv(FRAME_LENGTH.size)
        if head and len(head) < FRAME_LENGTH.size:
            head += _read_exact(conn, FRAME_LENGTH.size - len(head))
    except (CutOff, OSError):
        return None
    if not head:
        return None
    (length,) = FRAME_LENGTH.unpack(head)
    return int(length)


def _read_envelope(conn: socket.socket) -> Envelope:
    """The envelope part, once intd/N exists; a request cut off here is 54."""
    data = bytearray()
    try:
        for frame in read_frames(conn):
            data += frame
            if len(data) > MAX_ENVELOPE:
                raise CutOff
    except (CutOff, OSError) as exc:
        raise EnvelopeError(codes.READ_ERROR, b"") from exc
    return parse_envelope(bytes(data))


@dataclasses.dataclass
class QueueService:
    """Serve qmail-queue runs for ``ctx.home`` (a split home) on ``sock``."""

    ctx: ProgramContext
    ids: QmailIds
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    def serve_forever(self, sock: socket.socket) -> None:
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            uid = peer_uid(conn)
            code = codes.OK
            while code == codes.OK and (first := _next_request(conn)) is not None:
                code, qp = self.queue(uid, conn, first)
                try:
                    conn.sendall(answer(code, qp))
                except OSError:  # a caller that went away learns nothing
                    return

    def queue(self, uid: int, conn: socket.socket, first: int | None = None) -> tuple[int, int]:
        """One qmail-queue run for a caller of ``uid`` reading ``conn``: (exit code, qp).

        ``first`` is the request's first length when it has been read already.
        """
        runtime = dataclasses.replace(self.ctx.runtime, uid=uid)
        pid = runtime.next_pid()
        ctx = dataclasses.replace(self.ctx, runtime=runtime)
        try:
            job = make_job(ctx, self.env, pid, invoker_from_uid(uid, self.ids))
            writer = open_message(job, runtime.fileops, fsync=runtime.fsync)
        except QueueFailure as failure:
            _drain(conn, first)  # so that the caller, still sending, reads the answer
            return failure.code, pid
        try:
            for frame in read_frames(conn, first):
                writer.write(frame)
        except (CutOff, OSError):
            writer.abandon()
            return codes.READ_ERROR, pid
        try:
            writer.finish(b"", lambda: _read_envelope(conn))
        except QueueFailure as failure:
            return failure.code, pid
        return codes.OK, pid


def answer(code: int, qp: int) -> bytes:
    """The service's answer to one request."""
    return privsep.pack_fields([str(code).encode(), str(qp).encode()])


def _drain(conn: socket.socket, first: int | None = None) -> None:
    """Read the rest of a request (message and envelope) and drop it."""
    with suppress(CutOff, OSError):
        for part in range(2):
            for _frame in read_frames(conn, first if part == 0 else None):
                pass


class ServiceStream:
    """The caller's side of one request: the message goes out as it is put.

    Any failure to reach the service, or the service going away, is exit
    111 at :meth:`close`, as a qmail-queue that cannot run.
    """

    def __init__(self, path: Path) -> None:
        self._conn: socket.socket | None = None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(os.fspath(path))
        except OSError:
            conn.close()
        else:
            self._conn = conn

    def put(self, data: bytes) -> None:
        """More of the message, in frames of at most MAX_FRAME."""
        if self._conn is None or not data:
            return
        try:
            _send_frames(self._conn, data)
        except OSError:
            self.abandon()

    def close(self, envelope: bytes) -> tuple[int, int]:
        """End the message, send the envelope: (qmail-queue's exit code, qp)."""
        conn = self._conn
        if conn is None:
            return EXIT_TEMP, 0
        try:
            conn.sendall(FRAME_LENGTH.pack(0))
            _send_frames(conn, envelope)
            conn.sendall(FRAME_LENGTH.pack(0))
            conn.shutdown(socket.SHUT_WR)
            answer = bytearray()
            while chunk := conn.recv(4096):
                answer += chunk
            code, qp = privsep.unpack_fields(bytes(answer))
            return int(code), int(qp)
        except (OSError, ValueError):
            return EXIT_TEMP, 0
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Hang up: the service removes what it wrote of the message."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def frames(data: bytes) -> list[bytes]:
    """``data`` as frames of at most MAX_FRAME bytes, each after its length."""
    if len(data) <= MAX_FRAME:  # the usual case: no copy
        return [FRAME_LENGTH.pack(len(data)), data] if data else []
    view = memoryview(data)
    out: list[bytes] = []
    for start in range(0, len(view), MAX_FRAME):
        frame = view[start : start + MAX_FRAME]
        out += (FRAME_LENGTH.pack(len(frame)), bytes(frame))
    return out


def _send_frames(conn: socket.socket, data: bytes) -> None:
    for part in frames(data):
        conn.sendall(part)


def queue_via(path: Path, message: bytes, envelope: bytes) -> tuple[int, int]:
    """The caller's side: (qmail-queue's exit code, qp); 111 when nobody answers."""
    stream = ServiceStream(path)
    stream.put(message)
    return stream.close(envelope)
