"""A min-heap of (time, message id) with prioq.c's tie order.

qmail-send keeps its schedules in binary heaps keyed on time alone. Which of
two equally-due messages comes out first decides the order of log lines, so
this heap sifts exactly as prioq.c does (stop at the first parent whose time
is ``<=``) instead of breaking ties on the id as ``heapq`` would.

Like prioq.c's array of 16-byte ``struct prioq_elt``, the heap is two packed
arrays of 64-bit integers, times and ids side by side: with 100,000 messages
queued that is 1.6 MB per schedule, where a list of objects cost ten times
as much. An :class:`Elt` is made only when someone asks for one.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Elt:
    dt: int
    id: int


class Prioq:
    __slots__ = ("_dt", "_id")

    def __init__(self) -> None:
        self._dt = array("q")  # datetime_sec; signed, as an mtime may be
        self._id = array("Q")  # unsigned long: an inode number

    def __len__(self) -> int:
        return len(self._dt)

    def __iter__(self) -> Iterator[Elt]:
        """Every entry, in heap (not time) order."""
        for dt, msgid in zip(self._dt, self._id, strict=True):
            yield Elt(dt, msgid)

    def insert(self, dt: int, msgid: int) -> None:
        d, p = self._dt, self._id
        d.append(dt)
        p.append(msgid)
        j = len(d) - 1
        while j:
            i = (j - 1) >> 1
            if d[i] <= dt:
                break
            d[j] = d[i]
            p[j] = p[i]
            j = i
        d[j] = dt
        p[j] = msgid

    def min(self) -> Elt | None:
        return Elt(self._dt[0], self._id[0]) if self._dt else None

    def min_dt(self) -> int | None:
        """The earliest time alone (what a wake-up needs), without making an Elt."""
        return self._dt[0] if self._dt else None

    def pop_due(self, recent: int) -> int | None:
        """The earliest entry's id, removed, if it is due by ``recent``; else None."""
        if not self._dt or self._dt[0] > recent:
            return None
        msgid = self._id[0]
        self.delmin()
        return msgid

    def delmin(self) -> None:
        d, p = self._dt, self._id
        if not d:
            return
        n = len(d) - 1
        last_dt, last_id = d[n], p[n]
        i = 0
        while True:
            j = i + i + 2
            if j > n:
                break
            if d[j - 1] <= d[j]:
                j -= 1
            if last_dt <= d[j]:
                break
            d[i] = d[j]
            p[i] = p[j]
            i = j
        d[i] = last_dt
        p[i] = last_id
        d.pop()
        p.pop()

    def set_all(self, dt: int) -> None:
        """pqrun(): every entry due at ``dt`` (SIGALRM). Equal keys keep the heap valid."""
        self._dt = array("q", [dt]) * len(self._dt)
