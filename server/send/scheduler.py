"""qmail-send's scheduler: the state and the steps of its main loop, no I/O of its own.

The loop that drives it (:class:`server.send.core.QmailSend` in the simulator,
:mod:`server.send.daemon` for real) repeats qmail-send.c main()'s shape::

    recent = now;  begin(recent)            # ALRM / HUP flags
    wake = wakeup(recent)                   # each part's next wake-up
    ... wait until wake, a trigger, or a report ...
    recent = now
    complete(...) for each report           # del_do
    starts = step(recent, triggered)        # todo_do, pass_do, cleanup_do

:meth:`Scheduler.step` returns the deliveries to start; the driver hands each
to its channel and later feeds the report back through
:meth:`Scheduler.complete`. Everything about files is in
:mod:`server.send.store`, the todo/bounce/cleanup steps in
:mod:`server.send.phases`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from server.send import log as L
from server.send.bounce import DYING_TEXT, bounce_entry
from server.send.config import SendConfig
from server.send.jobs import ChanPass, Delivery, Job, Slots, records, senderadd
from server.send.prioq import Prioq
from server.send.schedule import (
    CHANNELS,
    REPORTMAX,
    SLEEP_FOREVER,
    SLEEP_SYSFAIL,
    is_dying,
    nextretry,
)
from server.send.store import QueueStore, rel
from server.spawn import ChannelName, DeliveryJob


@dataclass(frozen=True, kw_only=True)
class FileDone:
    """What :func:`file_done_steps` found: the unlink failed; or another
    channel's file still exists (``more``), or could not be looked at."""

    unlink_failed: bool = False
    more: bool = False
    stat_failed: ChannelName | None = None


def file_done_steps(store: QueueStore, channel: ChannelName, msgid: int) -> FileDone:
    """job_close's file steps for a channel file whose every recipient is done:
    unlink it, then look for the other channels' files. Touches no schedule
    (safe in another thread: server.send.todoahead)."""
    try:
        store.unlink(channel, msgid, missing_ok=False)
    except OSError:
        return FileDone(unlink_failed=True)
    for c in CHANNELS:
        if c == channel:
            continue
        try:
            if store.exists(c, msgid):
                return FileDone(more=True)
        except OSError:
            return FileDone(stat_failed=c)
    return FileDone()


def file_done_now(sched: Scheduler, job: Job, now: int) -> None:
    """:func:`file_done_steps` then :meth:`Scheduler.after_file_done`, at once."""
    sched.after_file_done(job, now, file_done_steps(sched.store, job.channel, job.msgid))


@dataclass(frozen=True, kw_only=True)
class Start:
    """A delivery for the driver to hand to ``channel``; report back with its slot."""

    channel: ChannelName
    slot: int
    delid: int
    job: DeliveryJob


class Scheduler:
    def __init__(self, store: QueueStore, cfg: SendConfig, log: Callable[[str], None]) -> None:
        self.store = store
        self.cfg = cfg
        self.log = log
        self.pqdone = Prioq()
        self.pqfail = Prioq()
        self.pqchan: dict[ChannelName, Prioq] = {c: Prioq() for c in CHANNELS}
        self.slots: dict[ChannelName, Slots] = {
            c: Slots(limit=cfg.concurrency[c]) for c in CHANNELS
        }
        self.numjobs = sum(cfg.concurrency.values())
        self.jobs: list[Job] = []
        self.passes: dict[ChannelName, ChanPass | None] = {c: None for c in CHANNELS}
        self.masterdelid = 1
        self.exitasap = False
        self.runasap = False
        self.readasap = False
        self.control: Path | None = None
        #: job_close's file steps (the daemon hands them to a thread)
        self.file_done: Callable[[Scheduler, Job, int], None] = file_done_now
        #: set when we queued a message ourselves (a bounce): qmail-queue pulls
        #: lock/trigger then, so the next pass scans todo/
        self.trigger_pulled = False

    # -- priority queues (pqadd, pqstart, pqfinish, pqrun) -------------------
    def pqstart(self, now: int) -> None:
        for msgid in self.store.iter_subdir_ids("info"):
            self.pqadd(msgid, now)

    def pqadd(self, msgid: int, now: int) -> None:
        fn = rel("info", msgid)
        try:
            if not self.store.exists("info", msgid):
                return  # someone yanking our chain
            fn = rel("todo", msgid)
            if self.store.exists("todo", msgid):
                return  # crashed while writing info: todo_do redoes it
            found: dict[ChannelName, int] = {}
            for c in CHANNELS:
                fn = rel(c, msgid)
                mtime = self.store.mtime(c, msgid)  # one stat, as qmail's
                if mtime is not None:
                    found[c] = mtime
        except OSError:
            self.log(L.warning("unable to stat", fn, L.WILL_TRY_AGAIN))
            self.pqfail.insert(now + SLEEP_SYSFAIL, msgid)
            return
        for c, dt in found.items():
            self.pqchan[c].insert(dt, msgid)
        if not found:
            self.pqdone.insert(now, msgid)

    def pqfinish(self) -> None:
        """Stamp each waiting channel file with its retry time, for the next start."""
        for c in CHANNELS:
            while (e := self.pqchan[c].min()) is not None:
                self.pqchan[c].delmin()
                try:
                    self.store.utime(c, e.id, e.dt)
                except OSError:
                    self.log(L.warning("unable to utime", rel(c, e.id), L.RETRIED_TOO_SOON))

    def pqrun(self, recent: int) -> None:
        for c in CHANNELS:
            self.pqchan[c].set_all(recent)

    # -- jobs ----------------------------------------------------------------
    def job_avail(self) -> bool:
        return len(self.jobs) < self.numjobs

    def job_close(self, job: Job, now: int) -> None:
        job.refs -= 1
        if job.refs > 0:
            return
        self.jobs.remove(job)
        if job.hiteof and not job.numtodo:
            self.file_done(self, job, now)
            return
        self.pqchan[job.channel].insert(job.retry, job.msgid)

    def after_file_done(self, job: Job, now: int, outcome: FileDone) -> None:
        """job_close once the finished channel file is unlinked (or not): retry
        it, wait for another channel's file, or go to messdone."""
        if outcome.unlink_failed:
            fn = rel(job.channel, job.msgid)
            self.log(L.warning("unable to unlink", fn, L.WILL_TRY_AGAIN))
            self.pqchan[job.channel].insert(now + SLEEP_SYSFAIL, job.msgid)
            return
        if outcome.stat_failed is not None:
            self.log(L.warning("unable to stat", rel(outcome.stat_failed, job.msgid)))
        elif outcome.more:
            return  # more channels going
        self.pqdone.insert(now, job.msgid)

    # -- deliveries ----------------------------------------------------------
    def del_avail(self, c: ChannelName) -> bool:
        return len(self.slots[c].used) < self.slots[c].limit

    def can_exit(self) -> bool:
        return not any(self.slots[c].used for c in CHANNELS)

    def status_line(self) -> str:
        used = {c: len(self.slots[c].used) for c in CHANNELS}
        limit = {c: self.slots[c].limit for c in CHANNELS}
        return L.status(used, limit, self.exitasap)

    def del_start(self, job: Job, mpos: int, recip: str) -> Start | None:
        c = job.channel
        slot = self.slots[c].free_slot()
        if slot is None:
            return None
        d = Delivery(slot=slot, delid=self.masterdelid, job=job, mpos=mpos, recip=recip)
        self.masterdelid += 1
        job.refs += 1
        self.slots[c].used[slot] = d
        self.log(L.starting_delivery(d.delid, job.msgid, c, recip))
        self.log(self.status_line())
        dj = DeliveryJob(
            msgid=job.msgid,
            message=self.store.path("mess", job.msgid),
            sender=senderadd(job.sender, recip),
            recipient=recip,
        )
        return Start(channel=c, slot=slot, delid=d.delid, job=dj)

    def complete(self, c: ChannelName, slot: int, report: bytes, now: int) -> None:
        """del_dochan: one report (``K``/``Z``/``D`` + text) for the delivery in ``slot``."""
        d = self.slots[c].used.get(slot)
        if d is None:
            self.log(L.REPORT_OUT_OF_RANGE)
            return
        report = report.partition(b"\0")[0][: REPORTMAX - 2]
        letter, text = report[:1], report[1:]
        if letter == b"Z" and d.job.dying:
            letter, text = b"D", text + DYING_TEXT
        if letter == b"K":
            self.log(L.delivery_success(d.delid, text))
            self._markdone(d)
        elif letter == b"Z":
            self.log(L.delivery_deferral(d.delid, text))
        elif letter == b"D":
            self.log(L.delivery_failure(d.delid, text))
            entry = bounce_entry(d.recip, text, self.cfg.vdoms)
            self.store.append_bounce(d.job.msgid, entry)
            self._markdone(d)
        else:
            self.log(L.report_mangled(d.delid))
        self.job_close(d.job, now)
        del self.slots[c].used[slot]
        self.log(self.status_line())

    def _markdone(self, d: Delivery) -> None:
        if not self.store.markdone(d.job.channel, d.job.msgid, d.mpos):
            fn = rel(d.job.channel, d.job.msgid)
            self.log(L.warning("trouble marking", fn, L.DELIVERED_TWICE))
        d.job.numtodo -= 1

    # -- passes --------------------------------------------------------------
    def pass_wakeup(self, wakeup: int) -> int:
        if self.exitasap:
            return wakeup
        for c in CHANNELS:
            if self.passes[c] is not None and self.del_avail(c):
                return 0
        candidates = [wakeup]
        if self.job_avail():
            for c in CHANNELS:
                dt = self.pqchan[c].min_dt()
                if self.passes[c] is None and dt is not None:
                    candidates.append(dt)
        for pq in (self.pqfail, self.pqdone):
            dt = pq.min_dt()
            if dt is not None:
                candidates.append(dt)
        return min(candidates)

    def pass_chan(self, c: ChannelName, recent: int) -> Start | None:
        if self.exitasap:
            return None
        p = self.passes[c]
        if p is None:
            p = self._open_pass(c, recent)
            if p is None:
                return None
        if not self.del_avail(c):
            return None
        if p.index >= len(p.records):
            p.job.hiteof = True
            self._end_pass(c, p, recent)
            return None
        record = p.records[p.index]
        p.index += 1
        mpos = p.mpos
        p.mpos += len(record) + 1
        kind = record[:1]
        if kind == b"T":
            p.job.numtodo += 1
            return self.del_start(p.job, mpos, record[1:].decode("latin-1"))
        if kind != b"D":
            self.log(L.unknown_record(rel(c, p.job.msgid), bang=True))
            self._end_pass(c, p, recent)
        return None

    def _end_pass(self, c: ChannelName, p: ChanPass, now: int) -> None:
        self.passes[c] = None
        self.job_close(p.job, now)

    def _open_pass(self, c: ChannelName, recent: int) -> ChanPass | None:
        if not self.job_avail():
            return None
        msgid = self.pqchan[c].pop_due(recent)
        if msgid is None:
            return None
        fn = rel(c, msgid)
        try:
            data = self.store.read(c, msgid)
        except OSError:
            data = None
        info = None
        if data is not None:
            info = self.store.getinfo(msgid)
            fn = rel("info", msgid)  # getinfo() leaves its name in fn
        if data is None or info is None:
            self.log(L.warning("trouble opening", fn, L.WILL_TRY_AGAIN))
            self.pqchan[c].insert(recent + SLEEP_SYSFAIL, msgid)
            return None
        job = Job(
            msgid=msgid,
            channel=c,
            retry=nextretry(info.birth, recent, c),
            sender=info.sender,
            dying=is_dying(info.birth, recent, self.cfg.lifetime),
        )
        self.jobs.append(job)
        p = ChanPass(job=job, records=records(data))
        self.passes[c] = p
        return p

    def default_wakeup(self, recent: int) -> int:
        return recent + SLEEP_FOREVER
