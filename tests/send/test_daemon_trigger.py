"""qmail-send's trigger during a todo/ scan (issue 13, daemons item 1).

qmail-queue pulls ``lock/trigger`` after each message it adds to todo/. A pull
that comes while qmail-send is still working through a scan must lead to
another scan as soon as that one ends (qmail-send.c todo_do only re-arms the
trigger when it opens a scan), not wait for SLEEP_TODO.

The daemon is driven one pass at a time (``_once``) on a virtual clock with
``max_sleep=0``, so select() never waits and nothing depends on timing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.send.daemon import Daemon
from server.spawn import ChannelName

from .simkit import ScriptedChannel, Sim, make_sim

#: passes given to each step; far fewer than it takes, far more than it needs
PASSES = 10


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    return make_sim(tmp_path / "qmail")


@pytest.fixture
def daemon(sim: Sim) -> Iterator[Daemon]:
    channels: dict[ChannelName, ScriptedChannel] = {"local": sim.local, "remote": sim.remote}
    # ahead=0: todo/ entries one at a time in the loop, as qmail-send.c's
    # todo_do (server.send.todoahead's threads would make passes wait on them)
    daemon = Daemon(sim.ctx, channels, sim.lines.append, max_sleep=0.0, ahead=0)
    try:
        yield daemon
    finally:
        daemon.terminate()
        assert daemon.run() == 0


def passes_until(daemon: Daemon, sim: Sim, line: str) -> bool:
    for _ in range(PASSES):
        daemon._once()
        if line in sim.lines:
            return True
    return False


def open_scan_with(daemon: Daemon, sim: Sim, msgids: list[int]) -> None:
    """Run passes until a scan is open with the last of ``msgids`` still to do."""
    # a scan goes in numeric order, and inode numbers need not grow (a freed one is reused)
    msgids = sorted(msgids)
    assert passes_until(daemon, sim, f"new msg {msgids[0]}")
    assert daemon.engine.todo.pending == msgids[1:]


def test_a_pull_during_a_scan_opens_another_scan(daemon: Daemon, sim: Sim) -> None:
    first = [sim.queue("a@x.example", ["alice@mx.example.org"]) for _ in range(2)]
    open_scan_with(daemon, sim, first)
    late = sim.queue("a@x.example", ["alice@mx.example.org"])  # pulls the trigger
    assert passes_until(daemon, sim, f"new msg {late}"), sim.lines
    assert sim.files("todo") == []


def test_a_bounce_queued_during_a_scan_opens_another_scan(daemon: Daemon, sim: Sim) -> None:
    """A bounce we queue ourselves sets the scheduler's flag; it waits for the scan too."""
    first = [sim.queue("a@x.example", ["alice@mx.example.org"]) for _ in range(2)]
    open_scan_with(daemon, sim, first)
    daemon.trigger.close()  # nobody reading: this message's own pull goes nowhere
    late = sim.queue("a@x.example", ["alice@mx.example.org"])
    daemon.trigger.set()
    daemon.engine.sched.trigger_pulled = True
    assert passes_until(daemon, sim, f"new msg {late}"), sim.lines


def test_without_a_pull_the_scan_waits(daemon: Daemon, sim: Sim) -> None:
    """The other side: nothing pulled, nothing due, so no new scan (SLEEP_TODO)."""
    first = [sim.queue("a@x.example", ["alice@mx.example.org"]) for _ in range(2)]
    open_scan_with(daemon, sim, first)
    daemon.trigger.close()
    late = sim.queue("a@x.example", ["alice@mx.example.org"])
    daemon.trigger.set()
    assert not passes_until(daemon, sim, f"new msg {late}")
    assert len(sim.files("todo")) == 1
