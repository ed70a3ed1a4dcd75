"""qmail's users, and the one place that changes a process's uid (prot.c).

netqmail-1.06 compiles the uids and gids of its users into every program at
build time (auto_uids.c, from INSTALL.ids): alias, qmaild, qmaill, root
(auto_uido), qmailp, qmailq, qmailr, qmails, and the groups nofiles and
qmail. Our equivalent is ``HOME/.qmail-sim/ids``, written by ``qmail-sim
setup`` when it makes a *split home* (run as root, with qmail's users on the
system): one ``name:number`` line per user and group. A home without that file
is a *one-user home*: every program runs as whoever starts it (DESIGN.md,
"Users and privileges").

Every uid change in the project goes through :func:`prot_gid` /
:func:`prot_uid` (prot.c's two functions) or :func:`become`, so a reader can
find everything that runs privileged by searching for them.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import grp
import os
import pwd
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

#: INSTALL.ids: the users and groups ``make setup`` expects.
USERS: Final = ("alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails")
GROUPS: Final = ("nofiles", "qmail")

IDS_FILE: Final = ".qmail-sim/ids"


@dataclass(frozen=True, kw_only=True)
class QmailIds:
    """auto_uids.c: the numbers a split home was made with."""

    alias: int  # auto_uida
    qmaild: int  # auto_uidd
    qmaill: int  # auto_uidl
    qmailp: int  # auto_uidp
    qmailq: int  # auto_uidq
    qmailr: int  # auto_uidr
    qmails: int  # auto_uids
    nofiles: int  # auto_gidn
    qmail: int  # auto_gidq
    root: int = 0  # auto_uido

    @classmethod
    def from_system(cls) -> QmailIds | None:
        """The system's qmail users and groups, or None when any is missing."""
        try:
            users = {name: pwd.getpwnam(name).pw_uid for name in USERS}
            groups = {name: grp.getgrnam(name).gr_gid for name in GROUPS}
        except KeyError:
            return None
        return cls(**users, **groups)

    def format(self) -> str:
        return "".join(f"{f.name}:{getattr(self, f.name)}\n" for f in fields(self))

    @classmethod
    def parse(cls, text: str) -> QmailIds:
        """The inverse of :meth:`format`; raises ValueError on anything else."""
        values: dict[str, int] = {}
        for line in text.splitlines():
            name, sep, number = line.partition(":")
            if not sep or not number.isdigit():
                raise ValueError(f"bad line in {IDS_FILE}: {line!r}")
            values[name] = int(number)
        return cls(**values)

    def write(self, home: Path) -> None:
        path = home / IDS_FILE
        path.parent.mkdir(exist_ok=True)
        path.write_text(self.format())

    @classmethod
    def of_home(cls, home: Path) -> QmailIds | None:
        """The ids a split home was made with; None for a one-user home."""
        try:
            text = (home / IDS_FILE).read_text()
        except FileNotFoundError:
            return None
        return cls.parse(text)


def privileged() -> bool:
    """Running as root, so that uids can be changed (qmail-start, qmail-lspawn)."""
    return os.geteuid() == 0


def closed_to(uid: int, gid: int, path: Path, need: int = os.R_OK | os.X_OK) -> str | None:
    """Why the user ``uid`` (group ``gid``) cannot use ``path``, or None if it can.

    Read from the modes alone, as the kernel checks them (owner bits, else group
    bits, else the others'): every directory on the way must be searchable, by
    the name given and by its real path, and ``path`` itself must allow ``need``.
    Supplementary groups and ACLs are not consulted. Root passes everything.
    """
    if uid == 0:
        return None

    def allows(st: os.stat_result, bits: int) -> bool:
        shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
        want = (4 if bits & os.R_OK else 0) | (2 if bits & os.W_OK else 0) | (bits & os.X_OK)
        return (st.st_mode >> shift) & want == want

    for name in dict.fromkeys((Path(os.path.abspath(path)), Path(os.path.realpath(path)))):
        for parent in reversed(name.parents):
            try:
                st = os.stat(parent)
            except OSError as exc:
                return f"{parent}: {exc.strerror}"
            if not allows(st, os.X_OK):
                return f"{parent} is mode {st.st_mode & 0o7777:04o}, owner {st.st_uid}"
        try:
            st = os.stat(name)
        except OSError as exc:
            return f"{name}: {exc.strerror}"
        if not allows(st, need):
            return f"{name} is mode {st.st_mode & 0o7777:04o}, owner {st.st_uid}"
    return None


def prot_gid(gid: int) -> None:
    """prot.c prot_gid(): the only group is ``gid``."""
    os.setgroups([gid])
    os.setgid(gid)


def prot_uid(uid: int) -> None:
    """prot.c prot_uid(): real, effective and saved uid become ``uid``."""
    os.setuid(uid)


def become(uid: int, gid: int) -> None:
    """Groups first, then the uid (after setuid there is no way back)."""
    prot_gid(gid)
    prot_uid(uid)


def spawn_as(ids: tuple[int, int] | None) -> dict[str, Any]:
    """``subprocess``'s arguments for a child started as ``ids`` (uid, gid), or
    as ourselves for None: what :func:`become` does, done by the kernel
    between fork and exec (groups [gid], then gid, then uid)."""
    if ids is None:
        return {}
    uid, gid = ids
    return {"user": uid, "group": gid, "extra_groups": [gid]}


# --- a child under another uid, talking to its parent --------------------------
#
# qmail-lspawn forks a child per delivery, which sets the recipient's gid and
# uid and execs qmail-local. Ours runs qmail-local's code in that forked child
# instead of a new interpreter. The child can ask its parent for a service (the
# simulator queues a forward for it) and ends by sending one result. Frames are
# a kind byte and a 4-byte length; nothing from the child is ever unpickled or
# executed by the parent: the child runs as a user who could have taken it over.

#: child exit codes when it cannot become the user (qmail-lspawn: QLX_USAGE,
#: QLX_ROOT after prot_uid)
EXIT_CANNOT_SWITCH: Final = 112
EXIT_STILL_ROOT: Final = 114

_ASK, _ANSWER, _RESULT = b"Q", b"A", b"R"
#: a child's outcome when it ended without a result (as waitpid's status of a
#: child killed): the caller reports a crash
KILLED: Final[tuple[bytes | None, int]] = (None, 9)
_HEADER = 5


#: Bytes of a field's length before it (big-endian), in :func:`pack_fields`.
FIELD_LENGTH: Final = 4


def pack_fields(fields_: list[bytes]) -> bytes:
    """Length-prefixed fields, the payload of a frame."""
    return b"".join(len(f).to_bytes(FIELD_LENGTH, "big") + f for f in fields_)


def unpack_fields(data: bytes) -> list[bytes]:
    """The inverse of :func:`pack_fields`; ValueError on anything malformed."""
    out: list[bytes] = []
    view = memoryview(data)
    while view:
        if len(view) < FIELD_LENGTH:
            raise ValueError("truncated field length")
        n = int.from_bytes(view[:FIELD_LENGTH], "big")
        if n > len(view) - FIELD_LENGTH:
            raise ValueError("field longer than the frame")
        out.append(bytes(view[FIELD_LENGTH : FIELD_LENGTH + n]))
        view = view[FIELD_LENGTH + n :]
    return out


def _send_frame(sock: socket.socket, kind: bytes, payload: bytes) -> None:
    sock.sendall(kind + len(payload).to_bytes(4, "big") + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _recv_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    header = _recv_exact(sock, _HEADER)
    if header is None:
        return None
    payload = _recv_exact(sock, int.from_bytes(header[1:], "big"))
    return None if payload is None else (header[:1], payload)


def _seal_fds(keep: set[int]) -> None:
    """dup2 /dev/null over every open descriptor not in ``keep`` (not close:
    a stale file object of the parent's would close whatever reused the number)."""
    null = os.open(os.devnull, os.O_RDWR)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd != null and fd not in keep:
            with contextlib.suppress(OSError):
                os.dup2(null, fd)
    os.close(null)


@dataclass(frozen=True)
class ChildEnd:
    """What a child's work gets: ``ask`` sends a request and waits for the answer."""

    sock: socket.socket

    def ask(self, payload: bytes) -> bytes:
        _send_frame(self.sock, _ASK, payload)
        frame = _recv_frame(self.sock)
        if frame is None or frame[0] != _ANSWER:
            raise OSError("the parent went away")
        return frame[1]


def _switch(uid: int, gid: int) -> int | None:
    """Become ``uid``/``gid``; the exit code that says why not, or None."""
    try:
        become(uid, gid)
    except OSError:
        return EXIT_CANNOT_SWITCH
    if os.getuid() == 0 or os.geteuid() == 0:
        return EXIT_STILL_ROOT
    return None


def run_as(
    uid: int,
    gid: int,
    work: Callable[[ChildEnd], bytes],
    serve: Callable[[bytes], bytes],
    keep_fds: frozenset[int] = frozenset(),
) -> tuple[bytes | None, int]:
    """Fork; the child becomes ``uid``/``gid`` and returns ``work``'s bytes.

    The parent answers the child's requests with ``serve`` until the child's
    result arrives. Returns (result or None when the child died without one,
    the child's wait status).
    """
    parent_sock, child_sock = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        gc.disable()  # short-lived: a collection would copy the whole shared heap
        code = 0
        try:
            parent_sock.close()
            _seal_fds(keep={child_sock.fileno(), *keep_fds})
            failed = _switch(uid, gid)
            if failed is not None:
                os._exit(failed)
            _send_frame(child_sock, _RESULT, work(ChildEnd(child_sock)))
        except BaseException:  # a child must never return into its parent
            code = 111
        finally:
            os._exit(code)
    child_sock.close()
    try:
        result, _ = _parent_side(parent_sock, serve)
    finally:
        parent_sock.close()
        _, status = os.waitpid(pid, 0)
    return result, status


# --- workers: a warm child per user -------------------------------------------------
#
# A child forked per delivery pays for the fork and, worse, for copying every
# page of the big parent it touches (each object it uses has its refcount
# written). qmail-lspawn's children are small C programs; ours are Python. So
# a real process keeps a warm worker per user: forked once, it becomes the
# user and runs one job after another, each as run_as's child would (the same
# frames to and from the parent). The parent pickles each job for it (root to
# the user: the worker trusts its parent); the worker, which the user could
# take over, only ever sends length-prefixed bytes, and only about that user's
# own mail. A job can bring one descriptor (SCM_RIGHTS): the queue file, which
# the user may not open.

_JOB = b"J"  # parent to worker: a pickled job, with at most one descriptor
_FIRST_READ = 1 << 16  # a worker's first read of a job
_FAILED = b"F"  # worker to parent: it could not become the user (payload: exit code)


def _worker_loop(sock: socket.socket, uid: int, gid: int) -> None:
    import importlib
    import pickle

    failed = _switch(uid, gid)
    if failed is not None:
        _send_frame(sock, _FAILED, str(failed).encode())
        return
    while True:
        # the header and as much of the job as has come, in one call (the
        # parent sends nothing more until this job's result)
        got, fds, _flags, _addr = socket.recv_fds(sock, _FIRST_READ, 1)
        if len(got) < _HEADER or got[:1] != _JOB:
            return  # the parent has gone
        size = int.from_bytes(got[1:_HEADER], "big")
        rest = _recv_exact(sock, size - (len(got) - _HEADER))
        if rest is None:
            return
        payload = got[_HEADER:] + rest
        entry, job = pickle.loads(payload)  # from our parent, root: trusted
        module, _, name = entry.partition(":")
        work = getattr(importlib.import_module(module), name)
        try:
            result = work(job, fds[0] if fds else None, ChildEnd(sock))
        finally:
            for fd in fds:
                os.close(fd)
        _send_frame(sock, _RESULT, result)


class Worker:
    """A child that became ``uid``/``gid`` and runs jobs for this process, one at a time."""

    def __init__(self, uid: int, gid: int) -> None:
        self.uid, self.gid = uid, gid
        self._sock, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = 0
            try:
                gc.freeze()  # the parent's heap stays shared: no collection writes to it
                self._sock.close()
                _seal_fds(keep={theirs.fileno()})
                _worker_loop(theirs, uid, gid)
            except BaseException:  # a worker must never return into its parent
                code = 111
            finally:
                os._exit(code)
        theirs.close()
        self.pid = pid
        self.dead = False

    def send(self, payload: bytes, fd: int | None) -> bool:
        """Hand the worker a job (a ``payload`` made by :func:`pickle_job`) and
        ``fd``, in one call where the socket takes it all. False: the worker
        is gone (and now dead for good)."""
        data = _JOB + len(payload).to_bytes(4, "big") + payload
        try:
            sent = socket.send_fds(self._sock, [data], [] if fd is None else [fd])
            if sent < len(data):
                self._sock.sendall(memoryview(data)[sent:])
        except OSError:
            self.close()
            return False
        return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def answer(self, payload: bytes) -> None:
        """Answer the worker's request (its ChildEnd's ``ask``)."""
        _send_frame(self._sock, _ANSWER, payload)

    def recv(self) -> bytes:
        """What the worker has sent (call when its socket is readable); b"" at its end."""
        try:
            return self._sock.recv(_FIRST_READ)
        except OSError:
            return b""

    def close(self) -> None:
        if self.dead:
            return
        self.dead = True
        self._sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class WorkerPool:
    """Warm workers by (uid, gid), each running one job at a time; as many
    per user as jobs for that user run at once. One idle longer than IDLE
    seconds is closed when the pool is next used (looked for at most once a
    second: a pool of a hundred users' workers is not walked per delivery),
    so a user's worker does not outlive its mail by long (the pool's own
    timing: real monotonic time, as server.local.locking's, not a runtime's
    clock)."""

    IDLE = 60.0
    #: how often, at most, the idle workers are looked over
    SWEEP = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[int, int], list[tuple[Worker, float]]] = {}
        self._swept = time.monotonic()

    def _take(self, uid: int, gid: int) -> Worker:
        now = time.monotonic()
        with self._lock:
            if now - self._swept >= self.SWEEP:
                self._swept = now
                self._close_idle(now)
            ready = self._idle.get((uid, gid))
            if ready:
                return ready.pop()[0]
        return Worker(uid, gid)

    def _close_idle(self, now: float) -> None:
        """Close each worker idle longer than IDLE (the lock held)."""
        for key, idle in list(self._idle.items()):
            for worker, since in [w for w in idle if now - w[1] > self.IDLE]:
                idle.remove((worker, since))
                worker.close()
            if not idle:
                del self._idle[key]

    def start(
        self,
        uid: int,
        gid: int,
        payload: bytes,
        fd: int | None,
        serve: Callable[[bytes], bytes],
    ) -> WorkerJob:
        """A job for a warm worker of ``uid``/``gid`` (one forked if none is
        idle): ``payload`` (made by :func:`pickle_job`) and ``fd`` are sent,
        and the :class:`WorkerJob` returned is read as the worker answers, by
        a selector's loop (bin/qmail-lspawn) or by :meth:`WorkerJob.wait`.
        Its entry is called in the worker with (job, the descriptor or None,
        a ChildEnd) and returns the result bytes."""
        worker = self._take(uid, gid)
        return WorkerJob(self, worker, serve, started=worker.send(payload, fd))

    def close_all(self) -> None:
        """At exit: each idle worker is told to go (its socket closed) and reaped."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for workers in idle.values():
            for worker, _since in workers:
                worker.close()

    def give(self, worker: Worker) -> None:
        """A worker whose job has ended goes back among the idle (unless dead)."""
        if worker.dead:
            return
        with self._lock:
            key = (worker.uid, worker.gid)
            self._idle.setdefault(key, []).append((worker, time.monotonic()))


class WorkerJob:
    """A job sent to a worker whose outcome is read a piece at a time.

    :meth:`readable` is called each time the worker's socket is readable; it
    returns None until the worker's result has come, then (the result or
    None, a wait status) as :func:`run_as` gives its child's: a worker that
    dies or misbehaves is closed for good, one that answers goes back to the
    pool. The worker's requests
    (:class:`ChildEnd`'s ``ask``) are answered with ``serve`` as they come.
    The worker runs as the user, who may take it over: whatever it sends is
    only ever frames, read as they arrive, so one that stops half-way holds
    up its own delivery and nothing else.
    """

    def __init__(
        self, pool: WorkerPool, worker: Worker, serve: Callable[[bytes], bytes], *, started: bool
    ) -> None:
        self._pool = pool
        self.worker = worker
        self._serve = serve
        self._buffer = bytearray()
        #: the outcome, once there is one; a job that could not be sent has its outcome already
        self.outcome: tuple[bytes | None, int] | None = None if started else KILLED

    def fileno(self) -> int:
        return self.worker.fileno()

    def readable(self) -> tuple[bytes | None, int] | None:
        if self.outcome is not None:
            return self.outcome
        data = self.worker.recv()
        if not data:
            return self._end(*KILLED)
        self._buffer += data
        while len(self._buffer) >= _HEADER:
            kind = bytes(self._buffer[:1])
            if kind not in (_ASK, _RESULT, _FAILED):
                return self._end(*KILLED)  # not the protocol: the worker is not trusted again
            size = int.from_bytes(self._buffer[1:_HEADER], "big")
            if len(self._buffer) < _HEADER + size:
                break
            payload = bytes(self._buffer[_HEADER : _HEADER + size])
            del self._buffer[: _HEADER + size]
            try:
                outcome = _child_said(kind, payload, self._serve, self.worker.answer)
            except OSError:
                return self._end(*KILLED)
            if outcome is not None:
                # anything after the end is not the protocol: not trusted again
                return self._end(*(KILLED if self._buffer else outcome))
        return None

    def wait(self) -> tuple[bytes | None, int]:
        """The outcome, read here (each read waits for the worker), as
        :func:`run_as` gives its child's."""
        while (outcome := self.readable()) is None:
            pass
        return outcome

    def _end(self, result: bytes | None, status: int) -> tuple[bytes | None, int]:
        self.outcome = (result, status)
        if result is None:
            self.worker.close()
        else:
            self._pool.give(self.worker)
        return self.outcome


#: This process's warm workers, for every kind of job: server.local.asuser's
#: deliveries and server.pop3.checkpassword's POP3 sessions share a user's.
WORKERS = WorkerPool()
atexit.register(WORKERS.close_all)


def pickle_job(entry: str, job: object) -> bytes | None:
    """A :class:`Worker`'s payload: ``entry`` ("module:function") and its job;
    None when the job cannot be pickled."""
    import pickle

    try:
        return pickle.dumps((entry, job))
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def _parent_side(sock: socket.socket, serve: Callable[[bytes], bytes]) -> tuple[bytes | None, int]:
    """Answer the child's requests until its result: (result or None, a wait status)."""
    try:
        while (frame := _recv_frame(sock)) is not None:
            outcome = _child_said(*frame, serve, lambda data: _send_frame(sock, _ANSWER, data))
            if outcome is not None:
                return outcome
    except OSError:
        pass
    return KILLED


def _child_said(
    kind: bytes, payload: bytes, serve: Callable[[bytes], bytes], answer: Callable[[bytes], None]
) -> tuple[bytes | None, int] | None:
    """One frame from a child (run_as's, or a worker's job): a request is
    answered with ``serve`` and None returned (more is to come); else the
    child's outcome: its result, the exit code it could not switch users
    with (as waitpid's status), or, for anything else, :data:`KILLED`."""
    if kind == _ASK:
        answer(serve(payload))
        return None
    if kind == _RESULT:
        return payload, 0
    if kind == _FAILED and payload.isdigit():
        return None, int(payload) << 8  # as waitpid: exited with that code
    return KILLED
