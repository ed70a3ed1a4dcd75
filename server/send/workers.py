"""The daemon's delivery threads: a pool lighter than ThreadPoolExecutor.

qmail-lspawn and qmail-rspawn run each delivery in a child process; the
daemon runs it in one of at most ``limit`` threads (the sum of the channels'
concurrency, which the scheduler never exceeds). A thread is started only
when every one so far is busy, and all take the next job from one queue, so
handing a delivery over is one queue put: no Future, no work item, no
semaphore. (In a pass that defers 100,000 messages at once, submit()'s
bookkeeping cost about as much as qmail-send's own work.)
"""

from __future__ import annotations

import queue
import threading
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Workers(Generic[T]):
    def __init__(self, limit: int, work: Callable[[T], None], name: str = "delivery") -> None:
        self.limit = max(1, limit)
        self.name = name
        self._work = work
        self._jobs: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0  # jobs handed over and not yet done
        self._lock = threading.Lock()

    def submit(self, job: T) -> None:
        with self._lock:
            self._busy += 1
            more = self._busy > len(self._threads) and len(self._threads) < self.limit
        if more:
            self._start()
        self._jobs.put(job)

    def _start(self) -> None:
        # A daemon thread: should the loop die without shutdown(), a thread
        # waiting for work must not keep the process alive (qmail-send's
        # children die with it too; the queue keeps what was not delivered).
        name = f"{self.name}_{len(self._threads)}"
        thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._work(job)
            except Exception:
                traceback.print_exc()  # as a thread that died would; this one goes on
            finally:
                with self._lock:
                    self._busy -= 1

    def shutdown(self, wait: bool = True) -> None:
        """Let every thread finish the jobs handed over, then end; wait for them."""
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
        self._threads = []
