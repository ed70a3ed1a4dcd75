"""The simulator's qmail-queue for programs that deliveries run as a user.

Run as root, the simulator delivers as each user (server.local.asuser), but
its home is a one-user home: root's queue, a ``bin/qmail-queue`` script
that is not setuid. A ``|command`` that queues (condredirect, forward,
qreceipt) could not write the queue, where qmail's setuid qmail-queue would.
So the simulator serves qmail-queue runs on a Unix socket
(server.queue.service, in a thread of its own process, with its virtual clock
and file steps) and names the socket in ``HOME/.qmail-sim/queue-socket``; a
program of the home run as a process queues through it
(server.programs.read_queue_socket). The service learns the caller's uid
from the kernel, so the Received line says ``invoked by uid N`` as
qmail-queue would for that user.

The socket lives in a short directory (a Unix socket's path has at most 107
bytes; a work directory may be deeper), open to every user: one directory a
process, made at its first service and removed at its exit, each service's
socket in it under a name of its own, so a program left over from one
scenario never reaches the next one's queue.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import socket
import tempfile
import threading
from contextlib import suppress
from pathlib import Path

from server import privsep
from server.programs import QUEUE_SOCKET_FILE, ProgramContext
from server.queue.service import QueueService, peer_uid

BACKLOG = 16


class SimQueueService:
    """A QueueService on a socket, answering one caller at a time until closed."""

    def __init__(self, ctx: ProgramContext, ids: privsep.QmailIds) -> None:
        self.service = QueueService(ctx, ids)
        self.path = path = _socket_dir() / f"socket.{next(_NAMES)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)
        self.sock.listen(BACKLOG)
        self.named_in = ctx.home / QUEUE_SOCKET_FILE
        self.named_in.write_text(f"{path}\n")
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: the scenario is over
                return
            with conn:
                code, qp = self.service.queue(peer_uid(conn), conn)
                with suppress(OSError):  # a caller that went away learns nothing
                    conn.sendall(privsep.pack_fields([str(code).encode(), str(qp).encode()]))

    def close(self) -> None:
        self.named_in.unlink(missing_ok=True)
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)
        self.path.unlink(missing_ok=True)


_NAMES = itertools.count(1)
_dir: Path | None = None
_dir_lock = threading.Lock()


def _socket_dir() -> Path:
    """This process's directory for the services' sockets (mkdtemp's and its
    removal cost more than the rest of a service's start and close)."""
    global _dir
    with _dir_lock:
        if _dir is None or not _dir.is_dir():
            _dir = Path(tempfile.mkdtemp(prefix="qs-queue-"))
            os.chmod(_dir, 0o711)
            atexit.register(shutil.rmtree, _dir, ignore_errors=True)
        return _dir


def start(ctx: ProgramContext) -> SimQueueService | None:
    """The service for ``ctx``'s home, or None without qmail's users to name callers."""
    ids = privsep.QmailIds.from_system()
    return None if ids is None else SimQueueService(ctx, ids)
