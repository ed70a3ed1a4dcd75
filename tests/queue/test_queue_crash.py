"""A crash or a failure at every durable step, checked against the states table."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from server.qdir import qfn
from server.queue import codes
from server.queue.client import queue_message
from server.queue.core import apply_cleanup, scan_queue
from server.queue.states import OSSIFIED, STATES, STEPS, stale_cleanup_actions
from server.runtime import Crash, FileOps
from tests.queue.queue_helpers import FaultyFileOps, make_ctx, queue_files

MESSAGE = b"Subject: crash\n\nbody\n"
ENVELOPE_FILE = b"u1000\0p1000\0Fa@b\0Tc@d\0"


def _dirs(queue: Path) -> set[str]:
    return set(queue_files(queue))


def _assert_in_state(queue: Path, name: str) -> None:
    state = STATES[name]
    dirs = _dirs(queue)
    assert state.files <= dirs <= state.files | state.maybe, (name, dirs)


def _clean_after_36_hours(queue: Path) -> None:
    listing = scan_queue(queue)
    atimes = [*listing.pid.values(), *listing.mess.values()]
    if atimes:
        now = max(atimes) + OSSIFIED + 1
        apply_cleanup(queue, stale_cleanup_actions(listing, now), FileOps())


def test_steps_table_matches_the_writer() -> None:
    assert [s.op for s in STEPS] == [
        "open_new",
        "link",
        "unlink",
        "write",
        "open_new",
        "write",
        "fsync_open_in_order",
        "link",
        "pull_trigger",
    ]
    for before, after in itertools.pairwise(STEPS):
        assert before.after == after.before


@pytest.mark.parametrize("k", range(1, len(STEPS) + 1), ids=[s.name for s in STEPS])
def test_crash_before_each_step(home: Path, k: int) -> None:
    queue = home / "queue"
    ops = FaultyFileOps(at=k, crash=True)
    with pytest.raises(Crash):
        queue_message(make_ctx(home, fileops=ops), {}, MESSAGE, "a@b", ["c@d"], invoker="network")
    step = STEPS[k - 1]
    _assert_in_state(queue, step.before)
    files = queue_files(queue)
    if "mess" in files:
        # Written in one step: either nothing yet, or all of it.
        assert files["mess"][0].read_bytes() in (b"", _expected_mess())
    if "intd" in files:
        assert files["intd"][0].read_bytes() in (b"", ENVELOPE_FILE)
    if "todo" in files:
        # Nothing half-written is ever in todo/.
        assert files["todo"][0].read_bytes() == ENVELOPE_FILE
    _clean_after_36_hours(queue)
    if step.before == "S4":
        assert set(queue_files(queue)) == {"mess", "intd", "todo"}  # queued, kept
    else:
        assert queue_files(queue) == {}


def _expected_mess() -> bytes:
    return b"Received: (qmail 1000 invoked from network); 14 Nov 2023 22:13:20 -0000\n" + MESSAGE


# qmail-queue.c on an I/O error at step k: the exit code and what it leaves.
# Step 1 is retried with the next pid/ name (pidopen), so it succeeds; 53
# (die_write, also for a failed fsync) cleans up intd/ and mess/; 63-66
# leave their files behind.
FAILURES = {
    1: (codes.OK, "S4"),
    2: (codes.MESS_TROUBLE, "P1"),
    3: (codes.PID_TROUBLE, "P2"),
    4: (codes.WRITE_ERROR, "S1"),
    5: (codes.INTD_TROUBLE, "S2"),
    6: (codes.WRITE_ERROR, "S1"),
    7: (codes.WRITE_ERROR, "S1"),
    8: (codes.TODO_TROUBLE, "S3"),
    9: (codes.OK, "S4"),
}


@pytest.mark.parametrize(("k", "expected"), sorted(FAILURES.items()))
def test_io_error_at_each_step(home: Path, k: int, expected: tuple[int, str]) -> None:
    code, state = expected
    queue = home / "queue"
    ops = FaultyFileOps(at=k, crash=False)
    result = queue_message(make_ctx(home, fileops=ops), {}, MESSAGE, "a@b", ["c@d"], invoker=1)
    assert result.error == codes.close_text(code)
    assert (result.msgid is not None) == (code == codes.OK)
    _assert_in_state(queue, state)
    _clean_after_36_hours(queue)
    assert bool(queue_files(queue)) == (state == "S4")


def test_nothing_acknowledged_is_lost_over_many_messages(home: Path) -> None:
    queue = home / "queue"
    per_message = len(STEPS)
    for crash_at in range(1, 3 * per_message + 1):
        for path in queue.glob("*/**/*"):
            if path.is_file() and path.parent.name != "lock":
                path.unlink()
        ops = FaultyFileOps(at=crash_at, crash=True)
        ctx = make_ctx(home, fileops=ops)
        acknowledged: list[int] = []
        with pytest.raises(Crash):
            for i in range(4):
                result = queue_message(ctx, {}, b"%d\n" % i, "a@b", ["c@d"], invoker=1)
                assert result.msgid is not None
                acknowledged.append(result.msgid)
        _clean_after_36_hours(queue)
        todo = {int(p.name) for p in (queue / "todo").iterdir()}
        assert set(acknowledged) <= todo
        for msgid in todo:
            assert qfn(queue, "mess", msgid).read_bytes().endswith(b"\n")
            assert (queue / "todo" / str(msgid)).read_bytes().endswith(b"Tc@d\0")
