"""bin/qmail-lspawn delivers in its own process: each delivery needs its own "pid".

qmail-lspawn forks a qmail-local per delivery, so two deliveries into one
Maildir in one second get two names (time.pid.host). Ours makes them calls,
so the pids are counted up from the process's own (a differential run of the
bundled suite against a home of ours as processes found the collision:
"Temporary error on maildir delivery").
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from server.programs import ProgramContext, with_counting_pids
from server.runtime import real_runtime, virtual_runtime


def test_a_real_runtime_counts_pids_from_its_own(tmp_path: Path) -> None:
    ctx = with_counting_pids(
        ProgramContext(home=tmp_path, runtime=real_runtime(), stderr=io.BytesIO())
    )
    pids = [ctx.runtime.next_pid() for _ in range(3)]
    assert pids == [os.getpid() + 1, os.getpid() + 2, os.getpid() + 3]


def test_a_counting_runtime_is_kept(tmp_path: Path) -> None:
    runtime, _ = virtual_runtime(start=1_700_000_000, first_pid=500)
    ctx = ProgramContext(home=tmp_path, runtime=runtime, stderr=io.BytesIO())
    assert with_counting_pids(ctx) is ctx


def test_fresh_pids_are_new_numbers_of_the_pid_space() -> None:
    """server.runtime.fresh_pid: a thread's id, from the kernel's pid counter,
    never the same twice in a row of calls (the counter moves on)."""
    from server.runtime import fresh_pid

    pids = [fresh_pid() for _ in range(50)]
    assert len(set(pids)) == 50
    assert os.getpid() not in pids
    assert all(pid > 0 for pid in pids)
