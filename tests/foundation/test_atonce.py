"""server.atonce: each item's call in a thread of its own, all under way at once."""

from __future__ import annotations

import threading

import pytest

from server.atonce import AtOnce


def test_results_come_in_the_items_order_from_calls_under_way_together() -> None:
    barrier = threading.Barrier(5, timeout=30)  # only calls under way together get through

    def call(item: int) -> tuple[int, str]:
        barrier.wait()
        return item * 10, threading.current_thread().name

    out = AtOnce(8, "test").map(call, [1, 2, 3, 4, 5])
    assert [value for value, _name in out] == [10, 20, 30, 40, 50]
    assert out[0][1] == threading.current_thread().name  # the first in the caller's thread
    assert len({name for _value, name in out}) == 5


def test_one_item_or_none_takes_no_thread() -> None:
    at_once = AtOnce(8, "test")
    assert at_once.map(lambda item: threading.current_thread().name, ["a"]) == [
        threading.current_thread().name
    ]
    assert at_once.map(lambda item: item, []) == []
    assert at_once._pool is None


def test_a_failing_call_raises_once_every_call_has_returned() -> None:
    finished: list[int] = []
    release = threading.Event()

    def call(item: int) -> int:
        if item == 0:
            release.set()
            raise OSError("the first fails at once")
        release.wait(30)
        finished.append(item)
        return item

    with pytest.raises(OSError, match="the first fails"):
        AtOnce(4, "test").map(call, [0, 1, 2, 3])
    assert sorted(finished) == [1, 2, 3]
