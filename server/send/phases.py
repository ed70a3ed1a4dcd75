"""The file-handling parts of qmail-send's loop: todo/, finished messages, cleanup.

* :class:`TodoScan` — todo_do: one todo/ entry per pass, while a scan is open;
  a scan opens when the trigger is pulled or every SLEEP_TODO seconds.
* :func:`messdone` / :func:`injectbounce` — a message with no channel file
  left: queue its bounce (if any), log ``end msg``, remove info/ and mess/.
* :class:`Cleanup` — every SLEEP_CLEANUP seconds, remove what a crash left in
  mess/ (no info/, no todo/, 36 hours old) and pid/ (qmail-clean cleanuppid).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from server.atonce import THREADS, AtOnce
from server.queue.core import apply_cleanup, scan_pids
from server.queue.states import CleanMessage, QueueListing, stale_cleanup_actions
from server.send import log as L
from server.send.bounce import compose, info_sender_for_bounce
from server.send.config import SendConfig
from server.send.schedule import SLEEP_CLEANUP, SLEEP_SYSFAIL, SLEEP_TODO
from server.send.scheduler import Scheduler
from server.send.store import QueueStore, rel
from server.send.todo import BadEnvelope, Envelope, Split, parse_envelope, split
from server.spawn import ChannelName

#: inject(message, sender, recipient) -> (error text or "", qp); raises OSError
#: when qmail-queue cannot be started at all.
Inject = Callable[[bytes, str, str], tuple[str, int]]


@dataclass(kw_only=True)
class TodoScan:
    nextrun: int
    pending: list[int] | None = None  # the open "directory", or None

    def wakeup(self, wakeup: int, exitasap: bool) -> int:
        if exitasap:
            return wakeup
        if self.pending is not None:
            return 0
        return min(wakeup, self.nextrun)

    def opened(self, sched: Scheduler, recent: int, triggered: bool) -> list[int] | None:
        """A new scan's listing of todo/ when one is due (the trigger pulled, or
        SLEEP_TODO since the last); None when none is, or opendir failed."""
        if not triggered and recent < self.nextrun:
            return None
        try:
            listed = sched.store.todo_ids()
        except OSError:
            sched.log("alert: unable to opendir todo, sleeping...")
            return None
        self.nextrun = recent + SLEEP_TODO
        return listed

    def step(self, sched: Scheduler, recent: int, triggered: bool) -> None:
        if sched.exitasap:
            return
        if self.pending is None:
            self.pending = self.opened(sched, recent, triggered)
            if self.pending is None:
                return
        if not self.pending:
            self.pending = None
            return
        todo_one(sched, self.pending.pop(0), recent)


def _info_lines(msgid: int, size: int, env: Envelope) -> list[str]:
    return [L.info_msg(msgid, size, sender, env.pid, env.uid) for sender in env.senders]


@dataclass(frozen=True, kw_only=True)
class TodoDone:
    """What todo_do's file steps for one entry did: the log lines they made,
    in qmail's order, and the channels it went to (None: it failed and stays
    in todo/ for the next scan)."""

    msgid: int
    lines: list[str]
    chan: list[ChannelName] | None


def todo_one(sched: Scheduler, msgid: int, now: int) -> None:
    """todo_do for one todo/ entry: its file steps, then its place in the schedules."""
    todo_commit(sched, todo_prepare(sched.store, sched.cfg, msgid, now), now)


def todo_commit(sched: Scheduler, done: TodoDone, now: int) -> None:
    """The log lines of :func:`todo_prepare`, then the message into its channels'
    schedules (or pqdone when it has no recipient), as todo_do ends."""
    for line in done.lines:
        sched.log(line)
    if done.chan is None:
        return
    for c in done.chan:
        sched.pqchan[c].insert(now, done.msgid)
    if not done.chan:
        sched.pqdone.insert(now, done.msgid)


def todo_prepare(store: QueueStore, cfg: SendConfig, msgid: int, now: int) -> TodoDone:
    """todo_do's file steps for one entry, in its order, touching no schedule:
    safe in another thread (server.send.todoahead runs several at once)."""
    written = todo_write(store, cfg, msgid, now)
    return written if isinstance(written, TodoDone) else todo_finish(store, written)


#: the threads a todo/ batch's entries are fsync'd in, at once
_SYNCS = AtOnce(THREADS, "todo fsync")


def todo_prepare_batch(
    store: QueueStore, cfg: SendConfig, msgids: list[int], now: int
) -> list[TodoDone]:
    """:func:`todo_prepare` for several entries, their fsyncs one journal
    commit: every entry's files are written, the kernel is asked to start
    writing all of them, and only then is each entry's info/ and channel
    files fsync'd, in todo_do's order, the entries at once (server.atonce:
    one after the other, each fsync after the commit waited for a cache
    flush of its own), and their todo/ cleaned. Each entry's own steps keep
    their order; only different entries' steps interleave."""
    written = [todo_write(store, cfg, msgid, now) for msgid in msgids]
    store.start_writeback([fd for w in written if isinstance(w, Written) for fd in w.fds])
    to_sync = [w for w in written if isinstance(w, Written)]
    if store.runtime.fsync:
        synced_each = _SYNCS.map(partial(todo_sync, store, hinted=True), to_sync)
    else:  # nothing to wait for: no thread
        synced_each = [todo_sync(store, w, hinted=True) for w in to_sync]
    each_synced = iter(synced_each)
    synced = [w if isinstance(w, TodoDone) else next(each_synced) for w in written]
    ready = [w.msgid for w in synced if isinstance(w, Written)]
    cleaned = dict(zip(ready, store.clean_all("todo", ready), strict=True))
    return [w if isinstance(w, TodoDone) else _cleaned(w, cleaned[w.msgid]) for w in synced]


@dataclass(frozen=True, kw_only=True)
class Written:
    """An entry whose info/ and channel files are written, not yet fsync'd."""

    msgid: int
    lines: list[str]
    chan: list[ChannelName]
    #: the files' descriptors (QueueStore.create), in :attr:`files`' order
    fds: tuple[int, ...]

    @property
    def files(self) -> list[str]:
        """What is fsync'd, in todo_do's order: info/, then each channel file."""
        return ["info", *self.chan]


def todo_write(store: QueueStore, cfg: SendConfig, msgid: int, now: int) -> TodoDone | Written:
    """todo_do's steps up to its fsyncs; a :class:`TodoDone` when one failed."""
    lines: list[str] = []

    def failed(line: str) -> TodoDone:
        return _failed(msgid, lines, line)

    try:
        data = store.read("todo", msgid)
    except OSError:
        return failed(L.warning("unable to open", rel("todo", msgid)))
    fn = rel("mess", msgid)
    try:
        size = store.size("mess", msgid)
        for sub in ("local", "remote", "info"):
            fn = rel(sub, msgid)
            store.unlink(sub, msgid)
    except OSError:
        what = "unable to stat" if fn.startswith("mess") else "unable to unlink"
        return failed(L.warning(what, fn))
    try:
        fds = [store.create("info", msgid)]
    except OSError:
        return failed(L.warning("unable to create", rel("info", msgid)))
    try:
        lines.append(L.new_msg(msgid))
        try:
            env = parse_envelope(data)
        except BadEnvelope as exc:
            lines += _info_lines(msgid, size, exc.partial)
            trouble: str | None = L.unknown_record(rel("todo", msgid), bang=False)
        else:
            lines += _info_lines(msgid, size, env)
            plan = split(env, cfg)
            trouble = _write_plan(store, msgid, plan, now, fds)
    except BaseException:
        store.close(*fds)
        raise
    if trouble is not None:
        store.close(*fds)  # todo_do's fail: each file closed
        return failed(trouble)
    return Written(msgid=msgid, lines=lines, chan=list(plan.chan), fds=tuple(fds))


def todo_finish(store: QueueStore, written: Written) -> TodoDone:
    """todo_do's fsyncs (info/, then each channel file: one journal commit,
    QueueStore.sync), then qmail-clean's ``todo/N``."""
    synced = todo_sync(store, written)
    if isinstance(synced, TodoDone):
        return synced
    return _cleaned(synced, store.clean("todo", synced.msgid))


def todo_sync(store: QueueStore, written: Written, *, hinted: bool = False) -> Written | TodoDone:
    """todo_do's fsyncs: info/, then each channel file (QueueStore.sync),
    and the files closed; a :class:`TodoDone` when one failed. ``hinted``:
    the kernel was asked to start writing them (QueueStore.start_writeback)."""
    msgid, files = written.msgid, written.files
    try:
        store.sync(msgid, list(zip(written.fds, files, strict=True)), hinted=hinted)
    except OSError as exc:
        paths = {store.path_str(sub, msgid): sub for sub in files}
        where = rel(paths.get(exc.filename, "info"), msgid)
        return _failed(msgid, written.lines, L.warning("trouble fsyncing", where))
    finally:
        store.close(*written.fds)
    return written


def _cleaned(written: Written, ok: bool) -> TodoDone:
    """The entry once qmail-clean has answered its ``todo/N``."""
    if not ok:
        return _failed(written.msgid, written.lines, L.clean_failed(rel("todo", written.msgid)))
    return TodoDone(msgid=written.msgid, lines=written.lines, chan=written.chan)


def _failed(msgid: int, lines: list[str], line: str) -> TodoDone:
    """An entry whose step failed with the warning ``line``: it stays in todo/."""
    lines.append(line)
    return TodoDone(msgid=msgid, lines=lines, chan=None)


def _write_plan(store: QueueStore, msgid: int, plan: Split, now: int, fds: list[int]) -> str | None:
    """The channel files created, then info/ (``fds[0]``) and each of them
    written (not fsync'd); each new descriptor goes into ``fds``. The warning
    that stops it, or None.

    todo_do flushes and fsyncs info/ before it flushes a channel's buffer;
    here every file is written first, so that the fsyncs that follow
    (:func:`todo_finish`), still in that order, are one journal commit."""
    for c in plan.chan:
        try:
            fds.append(store.create(c, msgid))
        except OSError:
            return L.warning("unable to create", rel(c, msgid))
    for fd, (sub, data) in zip(fds, [("info", plan.info), *plan.chan.items()], strict=True):
        try:
            store.fill(fd, data, now)
        except OSError:  # a full disk shows here
            return L.warning("trouble writing to", rel(sub, msgid))
    return None


def remove_message(sched: Scheduler, msgid: int, now: int) -> None:
    """messdone's last steps, after ``end msg``: unlink info/, then qmail-clean's ``foop/N``."""
    after_removal(sched, msgid, now, removal_steps(sched.store, msgid))


def removal_steps(store: QueueStore, msgid: int) -> str:
    """The file steps of :func:`remove_message`: "" when done, else the one that
    failed ("info" or "foop"). Touches no schedule (safe in another thread)."""
    try:
        store.unlink("info", msgid, missing_ok=False)
    except OSError:
        return "info"
    return "" if store.clean("foop", msgid) else "foop"


def after_removal(sched: Scheduler, msgid: int, now: int, failed: str) -> None:
    """qmail-send's warning for a step of :func:`removal_steps` that failed."""
    if failed == "info":
        sched.log(L.warning("unable to unlink", rel("info", msgid), L.WILL_TRY_AGAIN))
        sched.pqdone.insert(now + SLEEP_SYSFAIL, msgid)
    elif failed == "foop":
        sched.log(L.clean_failed(rel("foop", msgid)))


def messdone(
    sched: Scheduler,
    msgid: int,
    now: int,
    inject: Inject,
    date: str,
    remove: Callable[[Scheduler, int, int], None] = remove_message,
) -> None:
    store = sched.store
    fn = ""
    try:
        for sub in ("local", "remote", "todo"):
            fn = rel(sub, msgid)
            if store.exists(sub, msgid):
                return  # false alarm, or todo_do has it
        fn = rel("info", msgid)
        if not store.exists("info", msgid):
            return
    except OSError:
        sched.log(L.warning("unable to stat", fn, L.WILL_TRY_AGAIN))
        sched.pqdone.insert(now + SLEEP_SYSFAIL, msgid)
        return
    if not injectbounce(sched, msgid, inject, date):
        sched.pqdone.insert(now + SLEEP_SYSFAIL, msgid)
        return
    sched.log(L.end_msg(msgid))
    remove(sched, msgid, now)


def injectbounce(sched: Scheduler, msgid: int, inject: Inject, date: str) -> bool:
    store = sched.store
    info = store.getinfo(msgid)
    if info is None:
        return False
    sender = info_sender_for_bounce(info.sender)
    try:
        if not store.exists("bounce", msgid):
            return True
        entries = store.read("bounce", msgid)
        message = store.read("mess", msgid)
    except OSError:
        sched.log(L.warning("unable to stat", rel("bounce", msgid)))
        return False
    mail = compose(sender, entries, message, date, sched.cfg)
    if mail is None:
        sched.log(L.triple_bounce(rel("bounce", msgid)))
    else:
        try:
            error, qp = inject(mail.message, mail.sender, mail.recipient)
        except OSError:
            sched.log(L.INJECT_START_FAILED)
            return False
        if error:
            sched.log(L.INJECT_FAILED)
            return False
        sched.log(L.bounce_msg(msgid, qp))
        sched.trigger_pulled = True
    try:
        store.unlink("bounce", msgid, missing_ok=False)
    except OSError:
        sched.log(L.warning("unable to unlink", rel("bounce", msgid)))
        return False
    return True


@dataclass(kw_only=True)
class Cleanup:
    """cleanup_do and qmail-clean's cleanuppid, one whole walk per due time.

    The 36-hour rule itself is :func:`stale_cleanup_actions`.
    """

    due: int

    def wakeup(self, wakeup: int) -> int:
        return min(wakeup, self.due)

    def step(self, sched: Scheduler, recent: int) -> None:
        if recent < self.due:
            return
        self.due = recent + SLEEP_CLEANUP
        store = sched.store
        if store.cleaner is None:
            # stale pid/ files are qmail-clean's own business (cleanuppid): a
            # qmail-clean process reads pid/ itself; without one we do it here
            pids = stale_cleanup_actions(QueueListing(pid=scan_pids(store.queue)), recent)
            apply_cleanup(store.queue, pids, store.runtime.fileops)
        for msgid in stale_messages(store, recent):
            # qmail-send asks qmail-clean ("foop/N"), whichever one we have
            if not store.clean("foop", msgid):
                sched.log(L.clean_failed(rel("foop", msgid)))


def stale_messages(store: QueueStore, recent: int) -> list[int]:
    """The mess/ files cleanup_do hands to qmail-clean, in id order.

    The queue is read one split directory at a time and only the stale few
    are kept: with 100,000 messages queued, a listing of the whole queue at
    once was qmail-send's peak of memory.
    """
    stale = [
        action.msgid
        for part in store.cleanup_listings()
        for action in stale_cleanup_actions(part, recent)
        if isinstance(action, CleanMessage)
    ]
    return sorted(stale)
