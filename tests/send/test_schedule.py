"""The retry schedule as a pure function, and a week of it on the simulator."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from server.send.schedule import is_dying, nextretry, squareroot

from .simkit import Sim


def test_squareroot_exact_values() -> None:
    assert [squareroot(x) for x in (0, 1, 2, 3, 4, 99, 100, 101, 399, 400)] == [
        0, 1, 1, 1, 2, 9, 10, 10, 19, 20,
    ]  # fmt: skip
    # qmail's loop fills 16 bits of result and no more
    assert squareroot(2**40) == 65535


@given(st.integers(min_value=0, max_value=65535**2))
def test_squareroot_brackets(x: int) -> None:
    y = squareroot(x)
    assert y * y <= x < (y + 1) * (y + 1)


def test_nextretry_local_hand_computed() -> None:
    birth = 1000
    assert nextretry(birth, 1000, "local") == 1100  # (0 + 10)^2
    assert nextretry(birth, 1101, "local") == 1400  # isqrt(101) = 10 -> 20^2
    assert nextretry(birth, 1401, "local") == 1900  # isqrt(401) = 20 -> 30^2
    assert nextretry(birth, 1000 + 3599, "local") == 1000 + 69 * 69  # isqrt(3599) = 59


def test_nextretry_remote_hand_computed() -> None:
    birth = 1000
    assert nextretry(birth, 1000, "remote") == 1400  # (0 + 20)^2
    assert nextretry(birth, 1401, "remote") == 2600  # 40^2
    assert nextretry(birth, 2601, "remote") == 4600  # 60^2
    # a clock that runs behind birth: n = 0
    assert nextretry(birth, 900, "remote") == 1400


def test_lifetime_is_strictly_after() -> None:
    assert not is_dying(0, 604800, 604800)
    assert is_dying(0, 604801, 604800)


def _attempt_times(sim: Sim, channel: str) -> list[int]:
    times: list[int] = []

    def defer(job: object) -> bytes:
        times.append(int(sim.clock.t))
        return b"Zlater\n"

    getattr(sim, channel).script = defer
    return times


def test_a_week_of_remote_retries_in_milliseconds(sim: Sim) -> None:
    times = _attempt_times(sim, "remote")
    send = sim.start()
    birth = int(sim.clock.t)
    sim.queue("a@mx.example.org", ["b@far.example"])
    started = time.perf_counter()
    send.run_due()
    sim.advance(8 * 86400)
    elapsed = time.perf_counter() - started
    offsets = [t - birth for t in times]
    # qmail sleeps SLEEP_FUZZ = 1 second past each due time
    expected = [0] + [(20 * k) ** 2 + 1 for k in range(1, 40)]
    assert offsets[:40] == expected
    assert offsets[:5] == [0, 401, 1601, 3601, 6401]
    # the 40th attempt is past queuelifetime (608401 > 604800): a failure
    assert any("failure: later/I'm_not_going_to_try_again;" in line for line in sim.lines)
    assert elapsed < 2.0


def test_local_retry_times(sim: Sim) -> None:
    times = _attempt_times(sim, "local")
    send = sim.start()
    birth = int(sim.clock.t)
    sim.queue("a@mx.example.org", ["b@mx.example.org"])
    send.run_due()
    sim.advance(3000)
    assert [t - birth for t in times] == [0, 101, 401, 901, 1601, 2501]
