"""The simulator's qmail-queue for programs that deliveries run as a user.

Run as root, the simulator delivers as each user (server.local.asuser), but
its home is a one-user home: root's queue, a ``bin/qmail-queue`` script
that is not setuid. A ``|command`` that queues (condredirect, forward,
qreceipt) could not write the queue, where qmail's setuid qmail-queue would.
So the simulator serves qmail-queue runs on a Unix socket
(server.queue.service, in a thread of the simulator's process, with its
virtual clock and file steps) and names the socket in ``HOME/.qmail-sim/queue-socket``; a
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
import selectors
import shutil
import socket
import tempfile
import threading
import traceback
from contextlib import suppress
from pathlib import Path

from server import privsep
from server.programs import QUEUE_SOCKET_FILE, ProgramContext
from server.queue.service import QueueService, peer_uid

BACKLOG = 16


class SimQueueService:
    """A QueueService on a socket, answering one caller at a time until closed
    (by this process's :class:`_Acceptor`)."""

    def __init__(self, ctx: ProgramContext, ids: privsep.QmailIds) -> None:
        self.service = QueueService(ctx, ids)
        self.acceptor = _acceptor()
        self.path = path = self.acceptor.new_path()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)
        self.sock.listen(BACKLOG)
        self.named_in = ctx.home / QUEUE_SOCKET_FILE
        self.named_in.write_text(f"{path}\n")
        self.acceptor.add(self.sock, self.service)

    def close(self) -> None:
        """No new caller is served once this returns; one being served is
        waited for (up to :data:`CLOSE_WAIT` seconds)."""
        self.named_in.unlink(missing_ok=True)
        self.acceptor.remove(self.sock)
        self.sock.close()
        self.path.unlink(missing_ok=True)


#: How long a service's close waits for a caller it is serving (real seconds:
#: a bound that only a program stuck half-way through its message reaches).
CLOSE_WAIT = 10.0


class _Acceptor:
    """One thread a process that answers the callers of every open service,
    one at a time. A thread of each service's own cost more to start and to
    join than the rest of the service's start and close; a scenario's
    programs run one after another, so one thread serves them all."""

    def __init__(self) -> None:
        self._dir: Path | None = None  # the services' sockets (see new_path)
        self._names = itertools.count(1)
        self._selector = selectors.DefaultSelector()
        #: by descriptor: each open service's listening socket (non-blocking)
        self._open: dict[int, tuple[socket.socket, QueueService]] = {}
        #: the listening socket whose caller is being served, if any
        self._serving: socket.socket | None = None
        self._changed = threading.Condition()
        self._wake, self._woken = socket.socketpair()
        self._selector.register(self._woken, selectors.EVENT_READ)
        threading.Thread(target=self._run, name="simqueue", daemon=True).start()

    def new_path(self) -> Path:
        """A name for a new service's socket, in this process's directory for
        them (mkdtemp's and its removal cost more than the rest of a service's
        start and close), made again if something removed it."""
        with self._changed:
            if self._dir is None or not self._dir.is_dir():
                self._dir = Path(tempfile.mkdtemp(prefix="qs-queue-"))
                os.chmod(self._dir, 0o711)
                atexit.register(shutil.rmtree, self._dir, ignore_errors=True)
            return self._dir / f"socket.{next(self._names)}"

    def add(self, sock: socket.socket, service: QueueService) -> None:
        sock.setblocking(False)  # a descriptor reused since a select has no caller yet
        with self._changed:
            self._open[sock.fileno()] = (sock, service)
            self._selector.register(sock, selectors.EVENT_READ)
        self._wake.send(b"+")  # the thread selects again, with this socket

    def remove(self, sock: socket.socket) -> None:
        with self._changed:
            del self._open[sock.fileno()]
            self._selector.unregister(sock)
            self._changed.wait_for(lambda: self._serving is not sock, CLOSE_WAIT)

    def _run(self) -> None:
        while True:
            for key, _events in self._selector.select():
                if key.fileobj is self._woken:
                    self._woken.recv(4096)
                elif (accepted := self._accept(key.fd)) is not None:
                    self._serve(*accepted)

    def _accept(self, fd: int) -> tuple[socket.socket, QueueService] | None:
        """The caller waiting on ``fd``'s service, now marked as being served."""
        with self._changed:
            if (served := self._open.get(fd)) is None:
                return None  # removed since the select
            sock, service = served
            try:
                conn, _ = sock.accept()
            except OSError:  # BlockingIOError: not the socket selected
                return None
            self._serving = sock
        conn.setblocking(True)
        return conn, service

    def _serve(self, conn: socket.socket, service: QueueService) -> None:
        try:
            with conn:
                _answer(service, conn)
        except Exception:  # a bug in one run: said, and the caller sees its end
            traceback.print_exc()
        finally:
            with self._changed:
                self._serving = None
                self._changed.notify_all()


def _answer(service: QueueService, conn: socket.socket) -> None:
    """One qmail-queue run for the caller on ``conn``."""
    code, qp = service.queue(peer_uid(conn), conn)
    with suppress(OSError):  # a caller that went away learns nothing
        conn.sendall(privsep.pack_fields([str(code).encode(), str(qp).encode()]))


_the_acceptor: _Acceptor | None = None
_lock = threading.Lock()


def _acceptor() -> _Acceptor:
    global _the_acceptor
    with _lock:
        if _the_acceptor is None:
            _the_acceptor = _Acceptor()
        return _the_acceptor


def start(ctx: ProgramContext) -> SimQueueService | None:
    """The service for ``ctx``'s home, or None without qmail's users to name callers."""
    ids = privsep.QmailIds.from_system()
    return None if ids is None else SimQueueService(ctx, ids)
