"""``bin/qmail-send``: the delivery daemon as a program (qmail-send(8)).

qmail-send prints its log to descriptor 0, which qmail-start points at the
logger; as a program of ours it prints to stdout, one line per event. It
takes the send mutex (``queue/lock/sendmutex``, so two never run at once),
reads its controls, builds its two channels in this process
(qmail-lspawn's LocalChannel with the default delivery qmail-start passed,
qmail-rspawn's RemoteChannel on real sockets and the system's DNS) and runs
:class:`~server.send.daemon.Daemon` until a TERM.

Under a qmail-start that forks the spawn programs (ours or qmail's), descriptors
1-6 are pipes: then the channels and qmail-clean are those processes, spoken
to as qmail-send does (:mod:`server.send.pipes`), and the log goes to
descriptor 0.

This is also where the real world is touched: signal handlers, the lock,
umask. ``QMAILSIM_DEFAULTDELIVERY`` gives the default delivery when
qmail-send is started on its own (qmail-start's own default is
``./Mailbox``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import IO, BinaryIO

from server.privsep import privileged
from server.programs import ProgramContext, with_counting_pids
from server.runtime import OffsetClock
from server.send import log as L
from server.send.config import ControlsUnreadable, SendConfig
from server.send.daemon import Daemon
from server.send.pipes import CleanPipe, SpawnPipe
from server.spawn import Channel, ChannelName

DEFAULT_DELIVERY = "./Mailbox"
EXIT_TEMP = 111


def real_channels(
    ctx: ProgramContext, env: Mapping[str, str], default_delivery: str
) -> dict[ChannelName, Channel]:
    """qmail-lspawn and qmail-rspawn, in this process, on the real network."""
    from server.control import ControlDir
    from server.dns.transport import SocketDnsTransport
    from server.local.lspawn import LocalChannel
    from server.remote.connect import SocketConnector
    from server.remote.rspawn import RemoteChannel

    timeoutremote = ControlDir(ctx.home / "control").readint("timeoutremote", 1200)
    return {
        "local": LocalChannel(
            ctx, default_delivery=default_delivery, env=env, switch_uid=privileged()
        ),
        "remote": RemoteChannel(
            ctx, dns=SocketDnsTransport(), connector=SocketConnector(float(timeoutremote))
        ),
    }


SPAWN_NO_FIRE = "alert: cannot start: hath the daemon spawn no fire?"
#: qmail-send's descriptors under qmail-start: (commands, reports) per channel, then qmail-clean
PIPE_FDS = {"local": (1, 2), "remote": (3, 4), "clean": (5, 6)}


def under_qmail_start() -> bool:
    """Descriptors 1-6 are all pipes: qmail-start wired us to the spawn programs."""
    try:
        return all(stat.S_ISFIFO(os.fstat(fd).st_mode) for fd in range(1, 7))
    except OSError:
        return False


def spawn_pipes(
    cfg: SendConfig,
) -> tuple[dict[ChannelName, Channel], SendConfig, CleanPipe]:
    """The channels over descriptors 1-4, concurrency capped by what each spawn announced."""
    local = SpawnPipe(*PIPE_FDS["local"])
    remote = SpawnPipe(*PIPE_FDS["remote"])
    concurrency: dict[ChannelName, int] = {
        "local": min(cfg.concurrency["local"], local.limit),
        "remote": min(cfg.concurrency["remote"], remote.limit),
    }
    channels: dict[ChannelName, Channel] = {"local": local, "remote": remote}
    return (
        channels,
        dataclasses.replace(cfg, concurrency=concurrency),
        CleanPipe(*PIPE_FDS["clean"]),
    )


class LineWriter:
    """qmail-send's log, one line per call, safe from any thread.

    With ``flush_each`` every line is written at once. Without it lines
    wait in the buffer until :meth:`flush`, which the daemon's loop calls
    once per pass before it may sleep (server.send.daemon): the same lines in
    the same order, one write for a pass's few lines instead of one each.
    """

    def __init__(self, out: IO[bytes], flush_each: bool = True) -> None:
        self.out = out
        self.flush_each = flush_each
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            self.out.write(line.encode("latin-1", "replace") + b"\n")
            if self.flush_each:
                self.out.flush()

    def flush(self) -> None:
        with self.lock:
            self.out.flush()


def line_writer(out: IO[bytes], flush_each: bool = True) -> LineWriter:
    return LineWriter(out, flush_each)


class SignalRouter:
    """Signals caught before the daemon exists (as qmail-send catches them before
    its first log line) are held and handed over once it does.

    ``on_attach`` is called once the daemon exists, just before its loop runs:
    the mutex is held and the controls read, so qmail-send has started.

    ``handle`` may be called from another thread (``qmail-sim serve`` runs
    qmail-send in one and gets the signals in its main thread); the lock keeps
    a signal from being held after the daemon has taken the held ones. It is
    reentrant because a real handler can run in the thread inside ``attach``.
    """

    def __init__(self, on_attach: Callable[[], None] | None = None) -> None:
        self.daemon: Daemon | None = None
        self.pending: list[int] = []
        self.on_attach = on_attach
        self._lock = threading.RLock()

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        with self._lock:
            if self.daemon is None:
                self.pending.append(signum)
                return
        self.deliver(signum)

    def deliver(self, signum: int) -> None:
        assert self.daemon is not None
        if signum == signal.SIGALRM:
            self.daemon.alarm()
        elif signum == signal.SIGHUP:
            self.daemon.hangup()
        elif signum == signal.SIGTERM:
            self.daemon.terminate()

    def attach(self, daemon: Daemon) -> None:
        with self._lock:
            self.daemon = daemon
            held, self.pending = self.pending, []
        for signum in held:
            self.deliver(signum)
        if self.on_attach is not None:
            self.on_attach()


@contextlib.contextmanager
def signals(router: SignalRouter) -> Iterator[None]:
    """ALRM, HUP, TERM to the router while it runs (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGALRM, signal.SIGHUP, signal.SIGTERM)
    old = {sig: signal.signal(sig, router.handle) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def run_send(
    ctx: ProgramContext,
    env: Mapping[str, str],
    log: Callable[[str], None],
    channels: Mapping[ChannelName, Channel] | None = None,
    default_delivery: str = DEFAULT_DELIVERY,
    router: SignalRouter | None = None,
    pipes: bool = False,
) -> int:
    """qmail-send.c main(): checks, mutex, then the loop until TERM.

    ``router`` lets a caller in another thread signal the daemon (``qmail-sim
    serve`` stops it with ``router.handle(SIGTERM, None)``).
    """
    if not ctx.home.is_dir():
        log(L.CANNOT_START_HOME)
        return EXIT_TEMP
    try:
        cfg = SendConfig.read(ctx.home / "control")
    except ControlsUnreadable:
        log(L.CANNOT_START_CONTROLS)
        return EXIT_TEMP
    queue = ctx.home / "queue"
    if not queue.is_dir():
        log(L.CANNOT_START_QUEUE)
        return EXIT_TEMP
    try:
        mutex = os.open(queue / "lock" / "sendmutex", os.O_WRONLY)
    except OSError:
        log(L.CANNOT_START_MUTEX)
        return EXIT_TEMP
    try:
        try:
            fcntl.flock(mutex, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log(L.ALREADY_RUNNING)
            return EXIT_TEMP
        cleaner: CleanPipe | None = None
        if pipes:
            try:
                channels, cfg, cleaner = spawn_pipes(cfg)
            except OSError:
                log(SPAWN_NO_FIRE)
                return EXIT_TEMP
        if channels is None:
            ctx = with_counting_pids(ctx)
            channels = real_channels(ctx, env, default_delivery)
        offset = isinstance(ctx.runtime.clock, OffsetClock)
        router = router or SignalRouter()
        with signals(router):
            daemon = Daemon(
                ctx,
                channels,
                log,
                cfg=cfg,
                env=env,
                max_sleep=1.0 if offset else None,
                cleaner=cleaner,
            )
            router.attach(daemon)
            return daemon.run()
    finally:
        os.close(mutex)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if not ctx.inprocess:
        os.umask(0o077)
    if not ctx.inprocess and under_qmail_start():
        # qmail-send logs to descriptor 0 (qmail-start's logger pipe); 1-6 are
        # the spawn and clean pipes, so nothing else may write to 2.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
        writer = line_writer(os.fdopen(0, "wb", closefd=False), flush_each=False)
        try:
            return run_send(ctx, env, writer, pipes=True)
        finally:
            writer.flush()
    default = env.get("QMAILSIM_DEFAULTDELIVERY", DEFAULT_DELIVERY)
    return run_send(ctx, env, line_writer(stdout), default_delivery=default)
