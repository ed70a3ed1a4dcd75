"""qmail-send's main loop around :class:`~server.send.scheduler.Scheduler`.

:class:`Engine` is the loop body shared by the simulator and the daemon:
``begin`` (signal flags), ``wakeup`` (when anything is next due), ``step``
(todo_do, pass_do, cleanup_do: returns deliveries to start) and ``complete``
(a report). :class:`QmailSend` drives it in the simulator: deliveries run
synchronously on the injected clock, and a report is applied at the start of
the next pass — where qmail's ``del_do`` would read it — so the log keeps
qmail's order (``starting delivery``, ``status``, ``delivery N: success``,
``status``, ``end msg``).

:meth:`QmailSend.run_due` is one wake-up at the clock's now. qmail-send is
awake after a pull of lock/trigger (in the simulator: a todo/ entry it has not
seen yet, since qmail-queue pulls the trigger after writing one), after a
signal, or once its next wake-up plus SLEEP_FUZZ has come; otherwise it is
still asleep in select() and the call does nothing. :meth:`QmailSend.next_wakeup`
says when select() would return, so "advance" lands on qmail's own times.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from server.programs import ProgramContext
from server.send import log as L
from server.send.config import SendConfig
from server.send.phases import Cleanup, Inject, TodoScan, messdone, remove_message
from server.send.schedule import CHANNELS, SLEEP_FUZZ
from server.send.scheduler import Scheduler, Start
from server.send.store import QueueStore
from server.spawn import Channel, ChannelName

#: what a channel that raises is taken to have said (a deferral, never a loss)
CHANNEL_CRASHED = b"Zqmail-sim: delivery channel raised an exception. (#4.3.0)\n"


def default_inject(ctx: ProgramContext, env: Mapping[str, str] | None = None) -> Inject:
    """Bounces go through qmail-queue (server.queue.client) with invoker "bounce";
    qmail-queue inherits qmail-send's environment, ``TZ`` included."""
    keep = {"TZ": env["TZ"]} if env and "TZ" in env else {}

    def inject(message: bytes, sender: str, recipient: str) -> tuple[str, int]:
        from server.queue.client import queue_message

        result = queue_message(ctx, keep, message, sender, [recipient], invoker="bounce")
        return result.error, result.qp

    return inject


def default_date(ctx: ProgramContext, env: Mapping[str, str]) -> Callable[[int], str]:
    """date822fmt as this home prints it (GMT, or local time with date-localtime)."""
    from server.date822 import home_date

    def date(t: int) -> str:
        return home_date(t, ctx.patches, env, ctx.home)

    return date


class Engine:
    def __init__(
        self,
        ctx: ProgramContext,
        cfg: SendConfig,
        log: Callable[[str], None],
        inject: Inject,
        date: Callable[[int], str],
        cleaner: Callable[[str, int], bool] | None = None,
    ) -> None:
        self.ctx = ctx
        self.store = QueueStore(ctx.home / "queue", ctx.runtime, cleaner)
        self.sched = Scheduler(self.store, cfg, log)
        self.sched.control = ctx.home / "control"
        self.inject = inject
        self.date = date
        now = ctx.runtime.now()
        self.sched.pqstart(now)
        log(self.sched.status_line())
        self.todo: TodoScan = TodoScan(nextrun=now)
        self.cleanup = Cleanup(due=now)
        #: messdone's last file steps (the daemon hands them to a thread)
        self.remove: Callable[[Scheduler, int, int], None] = remove_message

    @property
    def log(self) -> Callable[[str], None]:
        return self.sched.log

    def begin(self, recent: int) -> None:
        s = self.sched
        if s.runasap:
            s.runasap = False
            s.pqrun(recent)
        if s.readasap:
            s.readasap = False
            self.reread()

    def reread(self) -> None:
        assert self.sched.control is not None
        cfg, alert = self.sched.cfg.reread(self.sched.control)
        if alert:
            self.log(alert)
        self.sched.cfg = cfg

    def wakeup(self, recent: int) -> int:
        s = self.sched
        w = s.default_wakeup(recent)
        w = s.pass_wakeup(w)
        w = self.todo.wakeup(w, s.exitasap)
        return self.cleanup.wakeup(w)

    def step(self, recent: int, triggered: bool) -> list[Start]:
        s = self.sched
        self.todo.step(s, recent, triggered)
        starts = []
        for c in CHANNELS:
            start = s.pass_chan(c, recent)
            if start is not None:
                starts.append(start)
        msgid = s.pqfail.pop_due(recent)
        if msgid is not None:
            s.pqadd(msgid, recent)
        msgid = s.pqdone.pop_due(recent)
        if msgid is not None:
            messdone(s, msgid, recent, self.inject, self.date(recent), self.remove)
        self.cleanup.step(s, recent)
        return starts

    def complete(self, start: Start, report: bytes) -> None:
        self.sched.complete(start.channel, start.slot, report, self.ctx.runtime.now())

    def finish(self) -> None:
        self.sched.pqfinish()
        self.log(L.STATUS_EXITING)

    def next_due(self) -> int | None:
        """The earliest scheduled time of a queued message, or None if there is none."""
        s = self.sched
        # each heap's root is its earliest entry
        times = [pq.min_dt() for pq in (*s.pqchan.values(), s.pqfail, s.pqdone)]
        return min((t for t in times if t is not None), default=None)


def deliver_safely(channel: Channel, start: Start) -> bytes:
    """Run one delivery; an exception becomes a deferral report, never a crash."""
    try:
        return channel.deliver(start.job)
    except Exception:
        traceback.print_exc()
        return CHANNEL_CRASHED


@dataclass(frozen=True, kw_only=True)
class QueueStatus:
    messages: int  # mess/ files (qmail-qstat's first line)
    unprocessed: int  # todo/ files (its second)
    scheduled: int  # messages waiting in qmail-send's schedules
    in_flight: dict[ChannelName, int]
    stopped: bool


class QmailSend:
    """qmail-send in the simulator: the harness's API (see module docstring)."""

    def __init__(
        self,
        ctx: ProgramContext,
        channels: Mapping[ChannelName, Channel],
        log: Callable[[str], None],
        *,
        inject: Inject | None = None,
        date: Callable[[int], str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.ctx = ctx
        self.channels = channels
        cfg = SendConfig.read(ctx.home / "control")
        self.engine = Engine(
            ctx, cfg, log, inject or default_inject(ctx, env), date or default_date(ctx, env or {})
        )
        self._reports: list[tuple[Start, bytes]] = []
        self.stopped = False
        #: qmail-send is awake: just started, signalled, or its trigger pulled
        self._woken = True
        self._seen_todo: set[int] = set()

    def _trigger_pulled(self) -> bool:
        """qmail-queue pulls lock/trigger whenever it adds to todo/: a new todo
        entry (or a bounce we queued ourselves) stands for a pull."""
        try:
            todo = set(self.engine.store.todo_ids())
        except OSError:
            return False
        new = bool(todo - self._seen_todo)
        self._seen_todo = todo
        return new or self.engine.sched.trigger_pulled

    def _asleep(self, recent: int) -> bool:
        """qmail-send sleeps in select() until its next wake-up plus SLEEP_FUZZ,
        unless a trigger or a signal wakes it first (qmail-send.c main)."""
        if self._woken or self._reports:
            return False
        return recent < self.engine.wakeup(recent) + SLEEP_FUZZ

    def run_due(self) -> None:
        """One wake-up of qmail-send at the clock's now, working until nothing is due.

        A pass happens when qmail would be awake now: after a trigger pull (a
        new todo/ entry), a signal, or once its wake-up time plus SLEEP_FUZZ has
        come. A retry due at exactly ``now`` waits for ``now + 1`` otherwise.
        """
        if self.stopped:
            return
        engine = self.engine
        triggered = self._trigger_pulled()
        if not triggered and self._asleep(self.ctx.runtime.now()):
            return
        triggered = triggered or self._woken
        self._woken = False
        while True:
            recent = self.ctx.runtime.now()
            engine.begin(recent)
            triggered = triggered or engine.sched.trigger_pulled
            engine.sched.trigger_pulled = False
            if not self._reports and not triggered and engine.wakeup(recent) > recent:
                break
            reports, self._reports = self._reports, []
            for start, report in reports:
                engine.complete(start, report)
            for start in engine.step(recent, triggered):
                channel = self.channels[start.channel]
                self._reports.append((start, deliver_safely(channel, start)))
            triggered = False
            if engine.sched.exitasap and engine.sched.can_exit() and not self._reports:
                self._stop()
                return

    def next_wakeup(self) -> float | None:
        """When qmail's select() would next return: the earliest due time plus SLEEP_FUZZ."""
        if self.stopped:
            return None
        due = self.engine.next_due()
        if due is None:
            return None
        return float(max(due, self.ctx.runtime.now()) + SLEEP_FUZZ)

    def alarm(self) -> None:
        self.engine.sched.runasap = True
        self._woken = True

    def hangup(self) -> None:
        self.engine.sched.readasap = True
        self._woken = True

    def terminate(self) -> None:
        self.engine.sched.exitasap = True
        self._woken = True
        self.run_due()

    def _stop(self) -> None:
        self.engine.finish()
        self.stopped = True

    def status(self) -> QueueStatus:
        store = self.engine.store
        sched = self.engine.sched
        return QueueStatus(
            messages=len(store.subdir_ids("mess")),
            unprocessed=len(store.todo_ids()),
            scheduled=sum(len(pq) for pq in (*sched.pqchan.values(), sched.pqfail, sched.pqdone)),
            in_flight={c: len(sched.slots[c].used) for c in CHANNELS},
            stopped=self.stopped,
        )
