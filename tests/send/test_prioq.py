"""qmail-send's schedules (server/send/prioq.py): prioq.c's order, in packed arrays.

The heap decides which of two equally due messages is tried first, so it is
checked against a line-by-line model of prioq.c on a list of pairs (the
shape qmail's array of ``struct prioq_elt`` has), over any sequence of
inserts, delmins and pqrun's set_all.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.send.prioq import Elt, Prioq


class ModelPrioq:
    """prioq.c, transliterated: prioq_insert, prioq_min, prioq_delmin."""

    def __init__(self) -> None:
        self.p: list[tuple[int, int]] = []

    def insert(self, dt: int, msgid: int) -> None:
        p = self.p
        p.append((dt, msgid))
        j = len(p) - 1
        while j:
            i = (j - 1) // 2
            if p[i][0] <= dt:
                break
            p[j] = p[i]
            j = i
        p[j] = (dt, msgid)

    def delmin(self) -> None:
        p = self.p
        if not p:
            return
        n = len(p) - 1
        i = 0
        while True:
            j = i + i + 2
            if j > n:
                break
            if p[j - 1][0] <= p[j][0]:
                j -= 1
            if p[n][0] <= p[j][0]:
                break
            p[i] = p[j]
            i = j
        p[i] = p[n]
        p.pop()


#: few distinct times, so ties (where the order is prioq.c's own) are common
TIMES = st.integers(min_value=-3, max_value=5)
IDS = st.integers(min_value=0, max_value=2**64 - 1)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), TIMES, IDS),
        st.tuples(st.just("delmin"), st.just(0), st.just(0)),
        st.tuples(st.just("set_all"), TIMES, st.just(0)),
    ),
    max_size=60,
)


def contents(pq: Prioq) -> list[tuple[int, int]]:
    return [(e.dt, e.id) for e in pq]


@given(OPS)
def test_the_heap_is_prioq_c_entry_for_entry(ops: list[tuple[str, int, int]]) -> None:
    pq, model = Prioq(), ModelPrioq()
    for op, dt, msgid in ops:
        if op == "insert":
            pq.insert(dt, msgid)
            model.insert(dt, msgid)
        elif op == "delmin":
            pq.delmin()
            model.delmin()
        else:
            pq.set_all(dt)
            model.p = [(dt, i) for _, i in model.p]
        assert contents(pq) == model.p
        assert len(pq) == len(model.p)
        head = model.p[0] if model.p else None
        assert pq.min() == (Elt(*head) if head else None)
        assert pq.min_dt() == (head[0] if head else None)


@given(st.lists(st.tuples(TIMES, IDS), max_size=40), TIMES)
def test_pop_due_takes_the_minimum_only_when_due(entries: list[tuple[int, int]], now: int) -> None:
    pq, model = Prioq(), ModelPrioq()
    for dt, msgid in entries:
        pq.insert(dt, msgid)
        model.insert(dt, msgid)
    popped = []
    while (due := pq.pop_due(now)) is not None:
        popped.append(due)
    expected = []
    while model.p and model.p[0][0] <= now:
        expected.append(model.p[0][1])
        model.delmin()
    assert popped == expected
    assert contents(pq) == model.p


def test_an_empty_heap() -> None:
    pq = Prioq()
    assert pq.min() is None
    assert pq.min_dt() is None
    assert pq.pop_due(10**9) is None
    pq.delmin()
    pq.set_all(5)
    assert len(pq) == 0
    assert list(pq) == []
