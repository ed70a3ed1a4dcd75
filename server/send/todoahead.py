"""The daemon's todo_do, with the file steps of the next few entries done ahead.

qmail-send does one todo/ entry per pass of its loop, every step in that one
process: two fsyncs (info/, then local/ or remote/) and a round trip to
qmail-clean, one message after another. A disk commits fsyncs together when
the files are written before the first of them (ext4's journal), so
:class:`TodoAhead` prepares up to ``depth`` entries of the open scan ahead,
in batches (:func:`~server.send.phases.todo_prepare_batch`): every entry of
a batch is written, then the entries are fsync'd at once (server.atonce:
the first fsyncs commit the whole batch, and the cache flushes of the
others come together), then cleaned. Each entry's own steps keep todo_do's
order (unlink, create info/, create the channel files, write and fsync
info/, then each channel file, then qmail-clean's ``todo/N``); only
different messages' steps interleave. A new batch starts once at most half
the depth is under way, so a batch is many entries, not one a pass.

The batches run in a pool of ``THREADS`` threads, two: while one waits for
a commit, the other writes the next batch. Ten threads, one entry each for
all its steps, committed together as well, but every system call of every
thread then handed the GIL over: 2.9 ms of the machine's CPU a delivered
message against 2.3 (docs/performance.md, session 8). Only the fsyncs run
in threads of their own: one entry after the other, a batch of twenty
waited 37 ms for forty cache flushes in a row (session 10).

What the schedule sees is still qmail's: one entry is committed per pass
(:func:`~server.send.phases.todo_commit`: its ``new msg`` and ``info msg``
lines, then the message into its channels' schedules), in the scan's order,
so the log keeps qmail-send's pattern of one ``new msg`` and then the
deliveries that pass starts. An entry is committed only once its file
steps are done, so a message is never scheduled before its info/ and
channel files are on disk and todo/ is cleaned.

:class:`Offload` runs the other file steps that end a message in the same
pool (job_close's unlink of a finished ``local/N``; messdone's unlink of
``info/N`` and ``foop/N`` to qmail-clean, after its ``end msg``), each
message's in qmail's order: one after another, in the order they came, by
one thread at a time, so that steps that come while it works are taken by
the same thread without another hand-over. It hands their outcome back to
the loop, which
logs a failure and reschedules as qmail-send does at that step. A finished
job writes to the loop's self-pipe (``wake``), so a loop asleep in select()
sees it at once.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from server.send.jobs import Job
from server.send.phases import (
    TodoDone,
    TodoScan,
    after_removal,
    removal_steps,
    todo_commit,
    todo_prepare_batch,
)
from server.send.scheduler import FileDone, Scheduler, file_done_steps

#: threads for the file steps (one writes a batch while another's commits)
THREADS = 2
#: todo entries in preparation at once
DEPTH = 40


class Offload:
    """File steps in a pool of threads; their results applied in the loop's thread."""

    def __init__(self, wake: Callable[[], None], threads: int = THREADS) -> None:
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="queue-steps")
        self.wake = wake
        self.busy = 0
        self._done: queue.SimpleQueue[tuple[Callable[[Any], None], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._queued: deque[tuple[Callable[[], Any], Callable[[Any], None]]] = deque()
        self._draining = False

    def submit(self, work: Callable[[], Any]) -> Future[Any]:
        """``work`` in a thread; the loop is woken when it ends."""
        future = self.pool.submit(work)
        future.add_done_callback(lambda _f: self.wake())
        return future

    def run(self, work: Callable[[], Any], then: Callable[[Any], None]) -> None:
        """``work`` in a thread, then ``then(result)`` in the loop (:meth:`apply`)."""
        self.busy += 1
        with self._lock:
            self._queued.append((work, then))
            if self._draining:
                return
            self._draining = True
        self.pool.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queued:
                    self._draining = False
                    return
                work, then = self._queued.popleft()
            future: Future[Any] = Future()
            try:
                future.set_result(work())
            except Exception as exc:
                future.set_exception(exc)
            self._done.put((then, future))
            self.wake()

    def ready(self) -> bool:
        """A job has ended whose ``then`` has not run yet."""
        return not self._done.empty()

    def apply(self) -> None:
        """In the loop: the ``then`` of every job that has ended."""
        while not self._done.empty():
            then, future = self._done.get()
            self.busy -= 1
            then(future.result())

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)
        self.apply()


class TodoAhead(TodoScan):
    """:class:`~server.send.phases.TodoScan` with entries prepared ahead (see module)."""

    def __init__(self, nextrun: int, offload: Offload, depth: int = DEPTH) -> None:
        super().__init__(nextrun=nextrun)
        self.offload = offload
        self.depth = depth
        #: each entry under way: its id, the batch preparing it, its place in that batch
        self.ahead: deque[tuple[int, Future[list[TodoDone]], int]] = deque()

    def busy(self) -> bool:
        return bool(self.ahead)

    def _room(self) -> bool:
        """Whether to start another batch: at most half the depth is under way
        (so that a batch is that many entries, not one a pass)."""
        return len(self.ahead) <= self.depth // 2

    def wakeup(self, wakeup: int, exitasap: bool) -> int:
        if self.ahead and self.ahead[0][1].done():
            return 0
        if exitasap:
            return wakeup
        if self.pending is not None and not self.ahead:
            return 0  # the scan is open: go on (todo_selprep)
        if self.pending and self._room():
            return 0
        if self.pending is not None:
            return wakeup  # woken when the first entry ahead is done
        return min(wakeup, self.nextrun)

    def step(self, sched: Scheduler, recent: int, triggered: bool) -> None:
        # entries already under way are committed even once exiting: their
        # files are written, and pqfinish then stamps their channel files
        if self.ahead and self.ahead[0][1].done():
            _msgid, batch, place = self.ahead.popleft()
            todo_commit(sched, batch.result()[place], recent)
        if sched.exitasap:
            return
        if self.pending is None:
            listed = self.opened(sched, recent, triggered)
            if listed is None:
                return
            under_way = {msgid for msgid, _, _ in self.ahead}
            self.pending = [msgid for msgid in listed if msgid not in under_way]
        if self.pending and self._room():
            take = self.depth - len(self.ahead)
            msgids, self.pending = self.pending[:take], self.pending[take:]
            batch = self.offload.submit(
                partial(todo_prepare_batch, sched.store, sched.cfg, msgids, recent)
            )
            self.ahead.extend((msgid, batch, place) for place, msgid in enumerate(msgids))
        if not self.pending and not self.ahead:
            self.pending = None


def remove_later(offload: Offload) -> Callable[[Scheduler, int, int], None]:
    """messdone's unlink of info/ and ``foop/N`` in a thread; what failed is
    logged (and retried) in the loop."""

    def remove(sched: Scheduler, msgid: int, _now: int) -> None:
        store = sched.store

        def then(failed: str) -> None:
            after_removal(sched, msgid, store.runtime.now(), failed)

        offload.run(lambda: removal_steps(store, msgid), then)

    return remove


def file_done_later(offload: Offload) -> Callable[[Scheduler, Job, int], None]:
    """job_close's unlink of a finished channel file in a thread; the schedule
    learns the outcome in the loop."""

    def file_done(sched: Scheduler, job: Job, _now: int) -> None:
        store = sched.store

        def then(outcome: FileDone) -> None:
            sched.after_file_done(job, store.runtime.now(), outcome)

        offload.run(lambda: file_done_steps(store, job.channel, job.msgid), then)

    return file_done
