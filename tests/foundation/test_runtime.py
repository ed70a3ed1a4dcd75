"""Runtime seams: VirtualClock, OffsetClock, virtual_runtime determinism."""

from __future__ import annotations

import os
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.runtime import (
    PROCESS_RANDOM,
    OffsetClock,
    PidsAhead,
    VirtualClock,
    for_worker,
    real_runtime,
    virtual_runtime,
)


@dataclass
class FixedClock:
    t: float

    def now(self) -> float:
        return self.t


def test_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock()
    start = clock.now()
    assert clock.now() == start
    clock.advance(10.5)
    assert clock.now() == start + 10.5
    clock.set(start + 100)
    assert clock.now() == start + 100


def test_virtual_clock_never_runs_backwards() -> None:
    clock = VirtualClock(1000.0)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(999.0)
    clock.advance(0)
    clock.set(1000.0)
    assert clock.now() == 1000.0


def test_offset_clock_reads_offset_file(tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    clock = OffsetClock(offset, base=FixedClock(5000.0))
    assert clock.now() == 5000.0  # no file: no offset
    offset.write_text("86400\n")
    assert clock.now() == 5000.0 + 86400
    offset.write_text("12.5")
    assert clock.now() == 5012.5
    offset.write_text("")
    assert clock.now() == 5000.0
    offset.write_text("garbage")
    assert clock.now() == 5000.0  # unreadable offset: treated as none


def test_runtime_now_is_whole_seconds() -> None:
    runtime, clock = virtual_runtime(start=1000.0)
    clock.advance(0.9)
    assert runtime.now() == 1000
    clock.advance(0.1)
    assert runtime.now() == 1001


def test_virtual_runtime_is_deterministic() -> None:
    a, _ = virtual_runtime(seed=7)
    b, _ = virtual_runtime(seed=7)
    assert [a.rng.random() for _ in range(5)] == [b.rng.random() for _ in range(5)]
    assert [a.next_pid() for _ in range(3)] == [1000, 1001, 1002]
    assert [b.next_pid() for _ in range(3)] == [1000, 1001, 1002]
    assert a.hostname == "sim.example" and a.uid == 1000


def test_a_real_runtime_pickles_its_random_source_by_name() -> None:
    # a job for a warm worker (server.privsep) carries the name, not the state:
    # the receiving process draws from its own source
    runtime = real_runtime()
    data = pickle.dumps(runtime.rng)
    assert len(data) < 100
    assert pickle.loads(data) is PROCESS_RANDOM
    assert len(pickle.dumps(runtime)) < 400


def test_a_simulator_runtime_goes_to_a_worker_without_its_generator() -> None:
    # qmail-local and qmail-pop3d draw no random numbers: the job carries the
    # worker's own source by name, and the simulator's draws go on unchanged
    runtime, _clock = virtual_runtime(seed=7)
    twin, _ = virtual_runtime(seed=7)
    shipped = pickle.loads(pickle.dumps(for_worker(runtime)))
    assert shipped.rng is PROCESS_RANDOM and runtime.rng is not PROCESS_RANDOM
    assert (shipped.clock.now(), shipped.hostname) == (runtime.clock.now(), runtime.hostname)
    assert len(pickle.dumps(for_worker(runtime))) < 600
    assert runtime.rng.getrandbits(64) == twin.rng.getrandbits(64)
    real = real_runtime()
    assert for_worker(real) is real


def test_a_forked_child_draws_other_numbers_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first draws, then out
        os.write(write, PROCESS_RANDOM.getrandbits(64).to_bytes(8, "big"))
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    theirs = int.from_bytes(os.read(read, 8), "big")
    os.close(read)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert theirs != PROCESS_RANDOM.getrandbits(64)


def test_pids_taken_ahead_are_each_handed_out_once() -> None:
    """server.runtime.PidsAhead: ids of threads, never this process's, never twice."""
    ahead = PidsAhead()
    pids = [ahead.take() for _ in range(50)]
    assert len(set(pids)) == 50
    assert os.getpid() not in pids


def test_a_pid_ready_is_used_only_while_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """The id a thread put ready is the next one handed out, unless it is
    MAX_AGE old or more: then one is made while the caller waits."""
    import server.runtime as rt

    made: list[int] = []
    real_fresh = rt.fresh_pid

    def counted() -> int:
        made.append(1)
        return real_fresh()

    monkeypatch.setattr(rt, "fresh_pid", counted)
    ahead = PidsAhead()
    ahead._put_own_id()  # as the thread a take starts does, here from this thread
    assert ahead.take() == threading.get_native_id()
    assert made == []
    ahead.MAX_AGE = 0.0  # whatever is ready is too old
    ahead._put_own_id()
    assert ahead.take() != threading.get_native_id()
    assert made == [1]


def test_a_forked_child_has_no_pid_ready_of_its_parents() -> None:
    ahead = PidsAhead()
    ahead._put_own_id()
    pid = os.fork()
    if pid == 0:  # the child: 0 when nothing is ready, then out
        os._exit(0 if ahead._ready is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert ahead._ready is not None  # the parent's is still there for the parent
