"""Every source of nondeterminism, in one place (STYLE.md, "Everywhere").

Nothing else in ``server/`` or ``harness/`` reads the real clock, the process
id, the host name, the environment or the random source directly: it is handed
a :class:`Runtime`. :func:`real_runtime` builds the one backed by the operating
system; the simulator builds one with a :class:`VirtualClock`, counters for
pids and a seeded :class:`random.Random`.

:class:`FileOps` is the seam for durable file steps (write, fsync, link,
rename, unlink). The queue and the delivery code call it for every ordered
step, so a test can substitute one that "crashes" (raises :class:`Crash`) at
step N and then inspect what a real crash would have left on disk.
"""

from __future__ import annotations

import _thread
import functools
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, cast

from server.fdwrite import write_all


class Clock(Protocol):
    """Seconds since the epoch, as a float (qmail's ``now()`` is whole seconds)."""

    def now(self) -> float: ...


class RealClock:
    def now(self) -> float:
        return time.time()


@dataclass
class VirtualClock:
    """A clock that moves only when told to. Starts at a fixed, plausible instant."""

    t: float = 1_700_000_000.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self.t += seconds

    def set(self, t: float) -> None:
        if t < self.t:
            raise ValueError("a clock does not run backwards")
        self.t = t


@dataclass
class OffsetClock:
    """Real time plus an offset read from a file: lets live daemons "advance".

    The harness writes a number of seconds into ``path``; every ``now()`` adds
    it to the real clock. Reading a small file per call is cheap next to the
    work each call stands for (a queue pass, a delivery).
    """

    path: Path
    base: Clock = field(default_factory=RealClock)

    def now(self) -> float:
        try:
            offset = float(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return self.base.now() + offset


class Crash(Exception):
    """Raised by a test's :class:`FileOps` to stand for the machine going down."""


_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of the range's dirty pages


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2) from the C library; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only the queue writers need it, once per process

    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except AttributeError:
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], call)


def start_writeback(fd: int) -> None:
    """Have the kernel start writing ``fd``'s dirty pages, without waiting.

    ``sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)``; it makes nothing
    durable by itself (no metadata, no cache flush), so where it does not
    exist or fails, nothing is lost but the head start.
    """
    call = _sync_file_range()
    if call is not None:
        call(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


#: a file's name as the durable steps take it: a Path, or a str where the
#: caller builds many (server.local.maildir: pathlib costs a delivery more
#: than its own system calls)
StrPath = str | os.PathLike[str]


class FileOps:
    """The durable file steps, done for real. Subclass to inject faults."""

    def write_new(self, path: StrPath, data: bytes, mode: int = 0o644) -> int:
        """Create ``path`` exclusively, write ``data``, fsync; return its inode."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            write_all(fd, data)
            os.fsync(fd)
            return os.fstat(fd).st_ino
        finally:
            os.close(fd)

    def link(self, src: StrPath, dst: StrPath) -> None:
        os.link(src, dst)

    def unlink(self, path: StrPath) -> None:
        os.unlink(path)

    # Files written through one descriptor from their creation to their
    # fsync, as qmail-queue.c and qmail-send.c keep theirs (server.queue.core,
    # server.send.store): no open and close around each write, hint and fsync.

    def open_new(self, path: StrPath, mode: int = 0o644) -> int:
        """Create ``path`` exclusively and empty, open for writing; its descriptor."""
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)

    def inode(self, fd: int, path: StrPath) -> int:
        """The inode number of ``fd``, the file :meth:`open_new` made at ``path``."""
        return os.fstat(fd).st_ino

    def write(self, fd: int, data: bytes) -> None:
        """Write all of ``data`` at ``fd``'s offset (no fsync)."""
        write_all(fd, data)

    def start_writeback_open(self, *fds: int) -> None:
        """Ask the kernel to start writing each file's dirty pages
        (:func:`start_writeback`): makes nothing durable."""
        for fd in fds:
            start_writeback(fd)

    def fsync_open_in_order(self, *files: tuple[int, StrPath], hinted: bool = False) -> None:
        """fsync each file, given as (descriptor, name), in order, each call
        returning before the next; a failing fsync raises with its name as
        ``filename``.

        Before the first fsync the kernel is asked to start writing every one
        of them (:func:`start_writeback`; ``hinted``: :meth:`start_writeback_open`
        has already asked, since they were written): a journaling file system
        then allocates their blocks in the transaction that the first fsync
        commits, and the later fsyncs find their data already committed. No
        file is durable before the ones ahead of it, as when each is written
        and fsync'd in turn, for one journal commit where that takes one each.
        """
        if not hinted:
            for fd, _path in files:
                start_writeback(fd)
        for fd, path in files:
            try:
                os.fsync(fd)
            except OSError as exc:
                exc.filename = os.fspath(path)
                raise

    def close(self, fd: int) -> None:
        os.close(fd)

    def pull_trigger(self, path: Path) -> None:
        """Write one byte to a named pipe without blocking; ignore every failure.

        triggerpull.c: nobody reading (ENXIO) or a full pipe is not an error.
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            os.write(fd, b"\0")
        except OSError:
            pass
        finally:
            os.close(fd)


@dataclass
class Runtime:
    """The injected world: clock, identity, randomness, file steps."""

    clock: Clock
    rng: random.Random
    hostname: str
    next_pid: Callable[[], int]
    uid: int
    fileops: FileOps = field(default_factory=FileOps)
    #: Whether to fsync at all. The simulator may turn it off for speed; the
    #: order of steps is kept either way.
    fsync: bool = True
    #: This host's IPv4 addresses as ipme.c lists them (qmail-smtpd's
    #: localiphost rule); None means "ask the operating system".
    ipme: frozenset[tuple[int, int, int, int]] | None = None
    #: How a program waits (maildirwatch's ``sleep(30)``); None: a
    #: :class:`VirtualClock` is moved on, any other clock is slept on for real.
    sleeper: Callable[[float], None] | None = None

    def now(self) -> int:
        """qmail works in whole seconds (now.c)."""
        return int(self.clock.now())

    def sleep(self, seconds: float) -> None:
        """sleep(3) through the injected clock: a test never waits for real."""
        if self.sleeper is not None:
            self.sleeper(seconds)
        elif isinstance(self.clock, VirtualClock):
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)


#: How long a thread may keep running Python while another waits for the GIL
#: (Python's default is 5 ms).
SWITCH_INTERVAL = 0.0002


def favour_waiting_threads() -> None:
    """Hand the GIL over sooner, in a process whose threads mostly wait on
    system calls: qmail-send's loop beside its todo/ threads, qmail-clean's
    and qmail-lspawn's threads, the queue service's thread per caller.

    A thread coming back from a system call (a stat, an fsync) must take the
    GIL again from whichever thread is running Python, which gives it up
    only after the switch interval. With Python's 5 ms, qmail-send's loop,
    whose every queue step is a system call, waited behind its own todo/
    threads: one Maildir, 3000 messages on tmpfs, went from 780-800 to
    910-1070 deliveries a second with 0.2 ms (docs/performance.md)."""
    sys.setswitchinterval(SWITCH_INTERVAL)


class _ProcessRandom(random.Random):
    """The random source of a real process (:data:`PROCESS_RANDOM`).

    Pickled, it names the receiving process's own source instead of carrying
    its state: a job pickled for a warm worker (server.privsep) held 3.8 KB
    of generator state, about 45 µs to pickle and unpickle per delivery,
    and the worker draws from its own source as every qmail program that
    exec starts seeds its own. A forked child seeds it again (as ``random``
    does its module's generator), so parent and child never draw the same
    numbers."""

    def __reduce__(self) -> str:
        return "PROCESS_RANDOM"  # pickle: the module's global of that name


#: The one random source of a real process (its runtimes share it).
PROCESS_RANDOM = _ProcessRandom()
os.register_at_fork(after_in_child=PROCESS_RANDOM.seed)


def for_worker(runtime: Runtime) -> Runtime:
    """``runtime`` as a job for a warm worker carries it (server.privsep.WORKERS):
    with the worker's own random source (:data:`PROCESS_RANDOM`). The
    programs a worker runs, qmail-local and qmail-pop3d, draw no random
    numbers (neither do qmail's), so a simulator's seeded generator need not
    travel: its 3.8 KB of state were most of a delivery job, about 0.2 ms to
    pickle and unpickle, and the simulator's own draws stay as they were."""
    return runtime if runtime.rng is PROCESS_RANDOM else replace(runtime, rng=PROCESS_RANDOM)


def real_runtime() -> Runtime:
    """The runtime of a real process: the one place that reads the real world."""
    return Runtime(
        clock=RealClock(),
        rng=PROCESS_RANDOM,
        hostname=socket.gethostname(),
        next_pid=os.getpid,
        uid=os.getuid(),
    )


def fresh_pid() -> int:
    """A process id no other process of this second has used.

    qmail-local's Maildir names are time.pid.host with the pid of the process
    delivering (a fresh child per delivery in qmail-lspawn and per Maildir
    line in qmail-local); a long-running process that delivers itself takes
    one here. Linux hands out thread ids from the same counter as process
    ids (one number space per pid namespace, given out in turn), so the id
    of a thread started for it is a number no live process holds and the
    kernel does not give again within a second, as a forked child's pid
    would be. A thread costs a tenth of a fork of a big Python process
    (whose every page the parent then copies on its next write to it); a
    bare one (``_thread``, with a lock to hand its id back) two thirds of a
    ``threading.Thread``, which keeps books this one does not need.
    """
    told = _thread.allocate_lock()
    told.acquire()
    box: list[int] = []
    _thread.start_new_thread(_tell_id, (box, told))
    told.acquire()  # released once the thread has put its id in the box
    return box[0]


def _tell_id(box: list[int], told: _thread.LockType) -> None:
    box.append(threading.get_native_id())
    told.release()


class PidsAhead:
    """:func:`fresh_pid` without waiting for the thread: each :meth:`take`
    starts the thread whose id the next one will use, and that thread puts
    its own id here. A warm worker's delivery (server.local.asuser) thus
    never waits for a thread to be scheduled, which on a busy machine is
    most of what a fresh pid costs.

    An id is used only if its thread put it here less than MAX_AGE seconds
    ago (the kernel gives a number out again only when its counter wraps,
    never within a second); else, or when none is ready yet, :meth:`take`
    makes one with :func:`fresh_pid`. Each id is handed out once. A forked
    child starts with none ready: it must not share its parent's.
    """

    MAX_AGE = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: tuple[int, float] | None = None
        os.register_at_fork(after_in_child=self._forget)

    def take(self) -> int:
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None and time.monotonic() - ready[1] < self.MAX_AGE:
            pid = ready[0]
        else:
            pid = fresh_pid()
        _thread.start_new_thread(self._put_own_id, ())
        return pid

    def _put_own_id(self) -> None:
        mine = (threading.get_native_id(), time.monotonic())
        with self._lock:
            self._ready = mine  # a later one replaces an earlier, which is never used

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._ready = None


#: this process's ids taken ahead (one per process: a forked child forgets them)
PIDS_AHEAD = PidsAhead()


class PidCounter:
    """Pids counted up: ``first``, ``first + 1``, … The simulator's, and a real
    process's stand-ins for the pids of the qmail-queue and qmail-local runs
    it makes itself (server.programs.with_counting_pids). Safe across threads
    (qmail-send's delivery threads take them), and a plain object, not a
    closure, so that a copy (a forked child's, or a job pickled for a warm
    worker, server.local.asuser) counts on from the same number; the parent
    then catches up with the pids the copy took."""

    def __init__(self, first: int) -> None:
        self._next = first
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            pid = self._next
            self._next += 1
        return pid

    def __getstate__(self) -> int:
        return self._next

    def __setstate__(self, state: int) -> None:
        self._next = state
        self._lock = threading.Lock()


def virtual_runtime(
    seed: int = 0,
    *,
    start: float = 1_700_000_000.0,
    hostname: str = "sim.example",
    first_pid: int = 1000,
    uid: int = 1000,
) -> tuple[Runtime, VirtualClock]:
    """A deterministic runtime for the simulator: same seed, same bytes."""
    clock = VirtualClock(start)
    return (
        Runtime(
            clock=clock,
            rng=random.Random(seed),
            hostname=hostname,
            next_pid=PidCounter(first_pid),
            uid=uid,
            ipme=frozenset({(0, 0, 0, 0), (127, 0, 0, 1)}),
        ),
        clock,
    )


def real_environ() -> dict[str, str]:
    """The process environment, read once at a program's edge.

    Started in the C locale, Python coerces it (PEP 538) and puts
    ``LC_CTYPE=C.UTF-8`` into its own environment, which qmail's programs
    would then pass on to every child (tcp-env's program, a ``|command``).
    A variable that exec did not give us is taken out again, from
    ``os.environ`` too, so that children inherit what we were given.
    """
    if "LC_CTYPE" in os.environ and _coerced_lc_ctype():
        del os.environ["LC_CTYPE"]
    return dict(os.environ)


def _coerced_lc_ctype() -> bool:
    """True when LC_CTYPE is not in the environment block exec handed us.

    Linux's /proc/self/environ still shows that block; setenv() does not
    change it. Elsewhere we cannot tell, and keep the variable.
    """
    try:
        with open("/proc/self/environ", "rb") as f:
            original = f.read().split(b"\0")
    except OSError:
        return False
    return not any(item.startswith(b"LC_CTYPE=") for item in original)
