"""qmail-send as a daemon: the :class:`~server.send.core.Engine` on a real clock.

The loop is qmail-send.c main(): read ``now`` once, ask every part for its
next wake-up, then wait in ``select()`` for the earliest of that wake-up
(plus SLEEP_FUZZ), a pull of ``queue/lock/trigger`` (a named pipe
qmail-queue writes a byte to), a finished delivery, or a signal. Deliveries
run in worker threads (:mod:`server.send.workers`), at most
concurrencylocal/concurrencyremote at a time (the scheduler never starts
more); a spawn program's pipe instead takes the command from the loop
(``SpawnPipe.begin``, comm_write), and the loop select()s on its reports
with its other descriptors and reads them (``SpawnPipe.readable``,
del_dochan), as qmail-send.c does. A worker thread's report comes back
through a queue, with a byte on a self-pipe when the loop may be asleep in
select(), and only the loop thread touches the scheduler.

The queue file steps of todo_do, job_close and messdone run in a few
threads (:mod:`server.send.todoahead`), several messages' at once, each
message's in qmail's order; their outcomes are applied in the loop. With
``ahead=0`` every one of these steps is done in the loop, one message after
another, as qmail-send.c does them.

The trigger is trigger.c's: the loop only asks whether the pipe is
readable, never reads it, and reopens it (which throws the byte away) just
before a todo/ scan opens. A pull while a scan is open is left in the pipe,
so the first pass after the scan ends sees it and opens another scan (a
burst of messages queued during one scan is not left waiting SLEEP_TODO).
While exiting, the pipe is not watched at all, as todo_selprep skips it.

Signals (installed by the program edge, :mod:`server.send.program`): ALRM
reschedules everything now, HUP rereads locals and virtualdomains, TERM stops
starting deliveries, waits for those running, stamps retry times and exits.
Each handler sets a flag and writes to the self-pipe so ``select`` returns.
As when qmail-send's select() is interrupted by a signal (EINTR), that pass
does nothing more: the loop goes round, so the flag is acted on (control
reread, retries due) before a trigger pulled meanwhile is read.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path

from server.programs import ProgramContext
from server.send.config import SendConfig
from server.send.core import Engine, default_date, default_inject, deliver_safely
from server.send.log import REPORT_OUT_OF_RANGE
from server.send.phases import Inject
from server.send.pipes import CleanPipe, SpawnPipe
from server.send.schedule import SLEEP_FUZZ
from server.send.scheduler import Start
from server.send.todoahead import DEPTH as TODO_AHEAD
from server.send.todoahead import Offload, TodoAhead, file_done_later, remove_later
from server.send.workers import Workers
from server.spawn import Channel, ChannelName
from server.timedread import wait_readable

CLEAN_DIED = "alert: oh no! lost qmail-clean connection! dying..."
SPAWN_DIED = "alert: oh no! lost spawn connection! dying..."


class Trigger:
    """trigger.c: lock/trigger opened for reading without blocking, reopened to re-arm.

    Reopening is what clears a pull: once no one has the pipe open its byte is
    gone, and a writer that has closed no longer makes the new descriptor
    readable (end of file).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.set()

    def set(self) -> None:
        self.close()
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            self.fd = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Daemon:
    def __init__(
        self,
        ctx: ProgramContext,
        channels: Mapping[ChannelName, Channel],
        log: Callable[[str], None],
        *,
        cfg: SendConfig | None = None,
        inject: Inject | None = None,
        date: Callable[[int], str] | None = None,
        env: Mapping[str, str] | None = None,
        max_sleep: float | None = None,
        cleaner: CleanPipe | None = None,
        ahead: int = TODO_AHEAD,
    ) -> None:
        self.ctx = ctx
        self.channels = channels
        cfg = cfg or SendConfig.read(ctx.home / "control")
        self.cleaner = cleaner
        self.engine = Engine(
            ctx,
            cfg,
            log,
            inject or default_inject(ctx, env),
            date or default_date(ctx, env or {}),
            cleaner,
        )
        #: an OffsetClock can jump; the harness caps the sleep so a jump is seen
        self.max_sleep = max_sleep
        self.reports: queue.SimpleQueue[tuple[Start, bytes]] = queue.SimpleQueue()
        self.interrupted = False  # a signal came: the pass after select() is skipped
        #: the loop may block in select(): a finished delivery must write to the self-pipe
        self.asleep = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.pool: Workers[Start] = Workers(sum(cfg.concurrency.values()), self._work)
        self.trigger = Trigger(ctx.home / "queue" / "lock" / "trigger")
        #: a log that holds lines until flushed (server.send.program.LineWriter)
        self.flush_log: Callable[[], None] | None = getattr(log, "flush", None)
        #: todo_do's and messdone's queue file steps, several messages' at once
        #: (``ahead`` 0: one entry at a time in the loop, as qmail-send.c)
        self.offload = Offload(self._poke)
        for channel in channels.values():
            if isinstance(channel, SpawnPipe):  # del_dochan's warning
                channel.on_stray = partial(self.engine.log, REPORT_OUT_OF_RANGE)
        if ahead:
            self.engine.todo = TodoAhead(self.engine.todo.nextrun, self.offload, ahead)
            self.engine.remove = remove_later(self.offload)
            self.engine.sched.file_done = file_done_later(self.offload)

    # -- signals: safe to call from a signal handler or another thread ---------
    def _poke(self) -> None:
        if self.wake_w < 0:
            return  # the loop has ended: its descriptor number may be another file's now
        # a full pipe means the loop is awake anyway
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"!")

    def _interrupt(self) -> None:
        self.interrupted = True
        self._poke()

    def alarm(self) -> None:
        self.engine.sched.runasap = True
        self._interrupt()

    def hangup(self) -> None:
        self.engine.sched.readasap = True
        self._interrupt()

    def terminate(self) -> None:
        self.engine.sched.exitasap = True
        self._interrupt()

    # -- the loop -------------------------------------------------------------
    def run(self) -> int:
        with self._signals_wake():
            return self._run()

    @contextlib.contextmanager
    def _signals_wake(self) -> Iterator[None]:
        """A signal writes to the self-pipe from C (signal.set_wakeup_fd).

        The kernel may hand a signal to any thread, e.g. a delivery worker;
        Python then runs the handler in the main thread only once select()
        returns, which without this byte could be at the next wake-up
        (a TERM sent while qmail-send was stopped, then SIGCONT, did that).
        """
        if threading.current_thread() is not threading.main_thread():
            yield  # in a harness thread: signals come as method calls
            return
        old = signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        try:
            yield
        finally:
            signal.set_wakeup_fd(old)

    def _can_exit(self) -> bool:
        """Exiting, no delivery running, and no queue file step under way."""
        engine = self.engine
        return (
            engine.sched.exitasap
            and engine.sched.can_exit()
            and not self.offload.busy
            and not (isinstance(engine.todo, TodoAhead) and engine.todo.busy())
        )

    def _run(self) -> int:
        try:
            while not self._can_exit():
                self._once()
            self.engine.finish()
        finally:
            self.pool.shutdown(wait=True)
            self.offload.shutdown()
            self.trigger.close()
            wake_r, wake_w, self.wake_r, self.wake_w = self.wake_r, self.wake_w, -1, -1
            os.close(wake_r)
            os.close(wake_w)
        return 0

    def _timeout(self, recent: int) -> float:
        """select()'s timeout: none while a report waits or something is due,
        else until the next wake-up plus SLEEP_FUZZ.

        Before a timeout above 0 is given, the loop says it may sleep and looks
        at the reports again: a delivery thread that puts its report after
        that look sees the flag and writes to the self-pipe (see _work); a
        report put before it is seen here. A busy loop is never poked.
        """
        if not self.reports.empty() or self.offload.ready():
            return 0.0  # (a queue step's wake-up byte may have gone to a pass a signal cut short)
        wakeup = self.engine.wakeup(recent)
        if wakeup <= recent:
            return 0.0
        timeout = float(wakeup - recent + SLEEP_FUZZ)
        if self.max_sleep is not None:
            timeout = min(timeout, self.max_sleep)
        self.asleep = True
        return timeout if self.reports.empty() else 0.0

    def _once(self) -> None:
        runtime = self.ctx.runtime
        recent = runtime.now()
        self.engine.begin(recent)
        timeout = self._timeout(recent)
        watched = self._watched_trigger()
        fds = [self.wake_r] + ([watched] if watched is not None else [])
        spawns = self._watched_spawns()
        fds += [pipe.fileno() for pipe in spawns]
        if self.flush_log is not None and timeout:
            self.flush_log()  # before sleeping; a busy loop's lines go out as the buffer fills
        readable = wait_readable(fds, timeout)
        self.asleep = False
        if self.wake_r in readable:
            self._drain_wake()
        if self.interrupted:  # select() == -1, errno EINTR: round again
            self.interrupted = False
            return
        pulled = watched is not None and watched in readable
        recent = runtime.now()
        for pipe in spawns:
            if pipe.fileno() in readable:
                pipe.readable()  # del_dochan: each report to its delivery
        sched = self.engine.sched
        if self.cleaner is not None and self.cleaner.dead and not sched.exitasap:
            self.engine.log(CLEAN_DIED)
            sched.exitasap = True
        for channel in self.channels.values():
            # a SpawnPipe whose program went away (qmail-send.c spawndied)
            if getattr(channel, "alive", True) is False and not sched.exitasap:
                self.engine.log(SPAWN_DIED)
                sched.exitasap = True
        while not self.reports.empty():
            start, report = self.reports.get()
            self.engine.complete(start, report)
        self.offload.apply()
        for start in self.engine.step(recent, self._take_trigger(pulled)):
            begin = getattr(self.channels[start.channel], "begin", None)
            if begin is not None:  # a spawn program's pipe (server.send.pipes.SpawnPipe)
                begin(start.job, partial(self._reported, start))
            else:
                self.pool.submit(start)

    def _watched_spawns(self) -> list[SpawnPipe]:
        """The spawn programs' pipes whose reports select() waits for
        (del_selprep: each while its program is alive)."""
        return [c for c in self.channels.values() if isinstance(c, SpawnPipe) and c.alive]

    def _watched_trigger(self) -> int | None:
        """The trigger's descriptor for select(), or None while exiting (todo_selprep)."""
        return None if self.engine.sched.exitasap else self.trigger.fd

    def _take_trigger(self, pulled: bool) -> bool:
        """Whether this pass's todo step sees a pull; a pull is used up only by a new scan.

        With a scan open (todo_do's flagtododir) the pull stays where it is: in
        the pipe, or in ``sched.trigger_pulled`` for a bounce we queued. Before a
        scan opens the pipe is re-armed, so a pull during that scan is kept.
        """
        sched = self.engine.sched
        pulled = pulled or sched.trigger_pulled
        if not pulled or self.engine.todo.pending is not None or sched.exitasap:
            return False
        self.trigger.set()
        sched.trigger_pulled = False
        return True

    def _drain_wake(self) -> None:
        # non-blocking: a read shorter than asked has emptied the pipe
        with contextlib.suppress(BlockingIOError):
            while len(os.read(self.wake_r, 4096)) == 4096:
                pass

    def _work(self, start: Start) -> None:
        """In a delivery thread: deliver, then :meth:`_reported`."""
        self._reported(start, deliver_safely(self.channels[start.channel], start))

    def _reported(self, start: Start, report: bytes) -> None:
        """From any thread: hand the report to the loop, wake it if it may be
        waiting in select() (see _timeout)."""
        self.reports.put((start, report))
        if self.asleep:
            self._poke()
