"""Kill qmail-send at every durable file step, restart it: nothing accepted is lost.

The crash is :class:`server.runtime.Crash` raised by a FileOps that counts
steps (create, unlink, link, ...). After it, a fresh QmailSend over the same
home stands for the restarted daemon. Every recipient must have been handed
to its channel at least once, and the queue must end empty.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from server.runtime import Crash, FileOps
from server.spawn import DeliveryJob

from .simkit import Sim, make_sim

RECIPIENTS = [["u1@mx.example.org", "r1@far.example"], ["u2@mx.example.org", "bad@far.example"]]


class CrashAt(FileOps):
    """Raises Crash at durable step number ``at`` (1-based); 0 never crashes."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.steps = 0

    def _tick(self) -> None:
        self.steps += 1
        if self.steps == self.at:
            raise Crash(f"crash at step {self.at}")

    def write_new(self, *a: Any, **k: Any) -> int:
        self._tick()
        return super().write_new(*a, **k)

    def open_new(self, *a: Any, **k: Any) -> int:
        self._tick()
        return super().open_new(*a, **k)

    def write(self, *a: Any, **k: Any) -> None:
        self._tick()
        super().write(*a, **k)

    def fsync_open_in_order(self, *a: Any, **k: Any) -> None:
        self._tick()
        super().fsync_open_in_order(*a, **k)

    def link(self, *a: Any, **k: Any) -> None:
        self._tick()
        super().link(*a, **k)

    def unlink(self, *a: Any, **k: Any) -> None:
        self._tick()
        super().unlink(*a, **k)


def script(job: DeliveryJob) -> bytes:
    return b"Dno such user\n" if job.recipient.startswith("bad@") else b"Kok\n"


def run(sim: Sim, crash_at: int) -> tuple[int, bool]:
    """Queue, then deliver with a crash at step ``crash_at``; restart and finish."""
    sim.local.script = sim.remote.script = script
    for rcpts in RECIPIENTS:
        sim.queue("a@mx.example.org", rcpts)
    ops = CrashAt(crash_at)
    sim.ctx.runtime.fileops = ops
    crashed = False
    try:
        sim.start().run_due()
        sim.advance(1000)
    except Crash:
        crashed = True
    sim.ctx.runtime.fileops = FileOps()
    _stamp_leftovers(sim)
    sim.start().run_due()
    sim.advance(200_000)  # past OSSIFIED: the cleanup removes stale leftovers
    return ops.steps, crashed


def _stamp_leftovers(sim: Sim) -> None:
    """Give files the crash left the clock's time, as a real disk would have.

    qmail-queue writes with the real clock; the 36-hour cleanup reads atimes.
    """
    t = sim.clock.t
    for sub in ("mess", "pid", "intd"):
        for path in sim.files(sub):
            os.utime(path, (t, t))


def delivered(sim: Sim) -> set[str]:
    return {j.recipient for j in sim.local.seen + sim.remote.seen}


def assert_nothing_lost(sim: Sim) -> None:
    assert {r for rcpts in RECIPIENTS for r in rcpts} <= delivered(sim)
    # the bounce of bad@far.example reached the sender
    assert any(j.recipient == "a@mx.example.org" and j.sender == "" for j in sim.local.seen)
    for sub in ("todo", "intd", "info", "local", "remote", "bounce"):
        assert not sim.files(sub), sub
    assert not sim.files("mess")
    assert not sim.files("pid")


def _total_steps(tmp_path: Path) -> int:
    sim = make_sim(tmp_path / "count")
    steps, crashed = run(sim, 0)
    assert not crashed
    assert_nothing_lost(sim)
    return steps


def test_crash_at_every_step(tmp_path: Path) -> None:
    total = _total_steps(tmp_path)
    assert total > 10
    for at in range(1, total + 1):
        sim = make_sim(tmp_path / f"crash{at}")
        _, crashed = run(sim, at)
        assert crashed, at
        try:
            assert_nothing_lost(sim)
        except AssertionError as exc:
            pytest.fail(f"crash at step {at}: {exc}\n" + "\n".join(sim.lines))
