"""A min-heap of (time, message id) with prioq.c's tie order.

qmail-send keeps its schedules in binary heaps keyed on time alone. Which of
two equally-due messages comes out first decides the order of log lines, so
this heap sifts exactly as prioq.c does (stop at the first parent whose time
is ``<=``) instead of breaking ties on the id as ``heapq`` would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Elt:
    dt: int
    id: int


class Prioq:
    def __init__(self) -> None:
        self._p: list[Elt] = []

    def __len__(self) -> int:
        return len(self._p)

    def __iter__(self) -> Iterator[Elt]:
        return iter(self._p)

    def insert(self, dt: int, msgid: int) -> None:
        p = self._p
        elt = Elt(dt, msgid)
        p.append(elt)
        j = len(p) - 1
        while j:
            i = (j - 1) // 2
            if p[i].dt <= dt:
                break
            p[j] = p[i]
            j = i
        p[j] = elt

    def min(self) -> Elt | None:
        return self._p[0] if self._p else None

    def delmin(self) -> None:
        p = self._p
        if not p:
            return
        n = len(p) - 1
        last = p[n]
        i = 0
        while True:
            j = i + i + 2
            if j > n:
                break
            if p[j - 1].dt <= p[j].dt:
                j -= 1
            if last.dt <= p[j].dt:
                break
            p[i] = p[j]
            i = j
        p[i] = last
        p.pop()

    def set_all(self, dt: int) -> None:
        """pqrun(): every entry due at ``dt`` (SIGALRM). Equal keys keep the heap valid."""
        self._p = [Elt(dt, e.id) for e in self._p]
