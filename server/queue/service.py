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
running qmail-queue would give it. One connection is one qmail-queue run:

    request: 8-byte length, then pack_fields([message, envelope])
    answer:  pack_fields([exit code, qp])

qmail-queue's exit codes carry over unchanged; a service that is not there
(no socket, refused, cut off) is exit 111 for the caller, as a missing
qmail-queue would be, and the queue's ordered steps mean that nothing is
half queued.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Final

from server import privsep
from server.errors import EXIT_TEMP
from server.privsep import QmailIds
from server.programs import ProgramContext
from server.queue import codes
from server.queue.core import QueueFailure, write_queue
from server.queue.envelope import parse_envelope
from server.queue.invoker import invoker_from_uid, make_job

#: The largest request the service reads: qmail-smtpd's databytes is at most
#: what a caller may queue anyway; this only stops a runaway length.
MAX_REQUEST: Final = 1 << 31
_LENGTH = struct.Struct(">Q")
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


def peer_uid(conn: socket.socket) -> int:
    """The connecting process's uid, as the kernel recorded it at connect()."""
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(data)
    return int(uid)


def _read_exact(conn: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = conn.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


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
            header = _read_exact(conn, _LENGTH.size)
            if header is None:
                return
            (length,) = _LENGTH.unpack(header)
            body = _read_exact(conn, length) if length <= MAX_REQUEST else None
            code, qp = self.queue(uid, body)
            conn.sendall(privsep.pack_fields([str(code).encode(), str(qp).encode()]))

    def queue(self, uid: int, body: bytes | None) -> tuple[int, int]:
        """One qmail-queue run for a caller of ``uid``: (exit code, qp)."""
        runtime = dataclasses.replace(self.ctx.runtime, uid=uid)
        pid = runtime.next_pid()
        if body is None:
            return codes.READ_ERROR, pid
        try:
            message, envelope = privsep.unpack_fields(body)
        except ValueError:
            return codes.READ_ERROR, pid
        ctx = dataclasses.replace(self.ctx, runtime=runtime)
        try:
            job = make_job(ctx, self.env, pid, invoker_from_uid(uid, self.ids))
            write_queue(
                job,
                message,
                lambda: parse_envelope(envelope),
                runtime.fileops,
                fsync=runtime.fsync,
            )
        except QueueFailure as failure:
            return failure.code, pid
        return codes.OK, pid


def queue_via(path: Path, message: bytes, envelope: bytes) -> tuple[int, int]:
    """The caller's side: (qmail-queue's exit code, qp); 111 when nobody answers."""
    body = privsep.pack_fields([message, envelope])
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(os.fspath(path))
            conn.sendall(_LENGTH.pack(len(body)) + body)
            conn.shutdown(socket.SHUT_WR)
            answer = bytearray()
            while chunk := conn.recv(4096):
                answer += chunk
        code, qp = privsep.unpack_fields(bytes(answer))
        return int(code), int(qp)
    except (OSError, ValueError):
        return EXIT_TEMP, 0
