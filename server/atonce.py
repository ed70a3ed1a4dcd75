"""Several messages' fsyncs at once, each message's steps in their own order.

A journaling file system commits every file written before a batch's first
fsync in that one commit; each later fsync of a file already committed still
sends the disk a cache flush of its own (ext4). One message after another,
a batch of twenty then waited for forty flushes in a row. qmail's programs
do not: each qmail-queue is a process of its own, and so their fsyncs run
at once, wait for the same commit, and their flushes come together.

:class:`AtOnce` gives a batch's messages that again: :meth:`AtOnce.map`
runs a function for each message in a thread of its own (the first in the
caller's thread), all at once, and returns when every one has. The threads
spend their time in fsync, with the interpreter released; only the steps
around each fsync hand it over. Used for the queue service's commits
(server.queue.service) and qmail-send's todo/ batches (server.send.phases).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

_T = TypeVar("_T")
_R = TypeVar("_R")


class AtOnce:
    """A pool of at most ``threads`` threads, started the first time a batch
    has more than one message; a bigger batch's messages wait for a thread."""

    def __init__(self, threads: int, name: str) -> None:
        self.threads = threads
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """``[fn(item) for item in items]``, each call in a thread of its own,
        all under way at once. An exception of one call is raised once every
        call has returned (each caller decides what its own failures are)."""
        if len(items) < 2:
            return [fn(item) for item in items]
        from concurrent.futures import wait

        pool = self._started()
        others = [pool.submit(fn, item) for item in items[1:]]
        try:
            first = fn(items[0])
        finally:
            wait(others)
        return [first, *(other.result() for other in others)]

    def _started(self) -> ThreadPoolExecutor:
        # imported here: concurrent.futures (and the logging it imports) is
        # about 5 ms of every start of a program that imports this module
        # (qmail-queue's client, in forward, condredirect, qreceipt)
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, self.name)
            return self._pool


#: threads at most for one batch's messages (a batch of the queue service is
#: its callers that came together; one of qmail-send's, up to 40 todo/ entries)
THREADS: Final = 16
