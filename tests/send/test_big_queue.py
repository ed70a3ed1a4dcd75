"""qmail-send with a big queue: what it keeps per message, and its cleanup walk.

qmail-send holds a queued message as one 16-byte prioq entry per schedule and
reads its files only when it is due (qmail-send.c, prioq.c). These tests
write queues straight in qmail's layout (as todo_do leaves them: mess, info,
one channel file) and look at memory with tracemalloc, which counts
allocations, not time. The speed of a pass is a benchmark's business
(benchmarks/memory_send.py), never a test's.
"""

from __future__ import annotations

import os
import re
import threading
import tracemalloc
from pathlib import Path

import pytest

from server.qdir import SPLIT, qfn
from server.queue.core import scan_messages
from server.queue.states import OSSIFIED, CleanMessage, stale_cleanup_actions
from server.send.config import SendConfig
from server.send.daemon import Daemon
from server.send.phases import stale_messages
from server.send.schedule import nextretry
from server.send.scheduler import Scheduler
from server.send.store import QueueStore

from .simkit import ScriptedChannel, Sim, make_sim

NOW = 1_700_000_000
#: messages in the memory tests: enough that anything kept per message shows
MESSAGES = 1000
#: messages in the daemon's pass
PASS_MESSAGES = 300
WAIT = 10.0  # seconds: a bound on waiting for the daemon, never a sleep
#: what the schedules may hold per queued message: prioq.c's 16 bytes and the
#: array's slack as it grows, with room; a Python object per message is 50+
BYTES_PER_MESSAGE = 40


def put(path: Path, data: bytes, t: int) -> None:
    path.write_bytes(data)
    os.utime(path, (t, t))


def write_message(queue: Path, msgid: int, *, mess_atime: int = NOW, info: bool = True) -> None:
    put(qfn(queue, "mess", msgid), b"Subject: x\n\nbody\n", mess_atime)
    if info:
        put(qfn(queue, "info", msgid), b"Fa@x.example\0", NOW - 3600)
        put(qfn(queue, "local", msgid), f"Tu{msgid}@mx.example.org\0".encode(), NOW - 1)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    """One queue of MESSAGES messages for the tests that only read it."""
    sim = make_sim(tmp_path_factory.mktemp("big") / "qmail")
    for msgid in range(1, MESSAGES + 1):
        write_message(sim.home / "queue", msgid)
    return sim


def test_the_schedule_keeps_no_object_per_message(big: Sim) -> None:
    store = QueueStore(big.home / "queue", big.ctx.runtime)
    cfg = SendConfig.read(big.home / "control")
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        sched = Scheduler(store, cfg, big.lines.append)
        sched.pqstart(NOW)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(sched.pqchan["local"]) == MESSAGES
    assert (after - before) / MESSAGES < BYTES_PER_MESSAGE


def test_the_cleanup_walk_holds_one_split_directory_at_a_time(big: Sim) -> None:
    store = QueueStore(big.home / "queue", big.ctx.runtime)
    tracemalloc.start()
    try:
        assert stale_messages(store, NOW) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the whole queue's listing at once took some 200 bytes a message
    assert peak / MESSAGES < BYTES_PER_MESSAGE


def test_the_cleanup_walk_finds_what_the_whole_listing_finds(sim: Sim) -> None:
    """Stale mess/ files without info/ or todo/, in id order across split directories."""
    queue = sim.home / "queue"
    old = NOW - OSSIFIED - 1
    for msgid in range(1, 3 * SPLIT):
        # every third one is fresh; of the stale ones, some are still being delivered
        stale = msgid % 3 != 0
        write_message(queue, msgid, mess_atime=old if stale else NOW, info=msgid % 4 == 0)
    for msgid in (5, 29):  # queued, not yet preprocessed: todo/ keeps them
        put(queue / "todo" / str(msgid), b"u0\0p1\0Fa@x.example\0Tb@y.example\0", NOW)
    put(qfn(queue, "mess", 3 * SPLIT + 1), b"x", NOW - OSSIFIED)  # exactly 36 hours: kept
    (queue / "mess" / "7" / "not-a-number").write_bytes(b"")
    store = QueueStore(queue, sim.ctx.runtime)
    whole = [
        a.msgid
        for a in stale_cleanup_actions(scan_messages(queue), NOW)
        if isinstance(a, CleanMessage)
    ]
    expected = [i for i in range(1, 3 * SPLIT) if i % 3 and i % 4 and i not in (5, 29)]
    assert stale_messages(store, NOW) == whole == expected


def test_the_cleanup_walk_passes_over_missing_directories(sim: Sim) -> None:
    queue = sim.home / "queue"
    write_message(queue, 1, mess_atime=NOW - OSSIFIED - 1, info=False)
    os.rmdir(queue / "mess" / "2")
    os.rmdir(queue / "info" / "5")
    assert stale_messages(QueueStore(queue, sim.ctx.runtime), NOW) == [1]


def test_one_daemon_pass_defers_each_message_once_in_due_order(sim: Sim) -> None:
    """The daemon on the simulator's clock: every message is due, in an order
    unlike its ids; each is tried once, earliest due first, and its file is
    stamped at exit with qmail's retry time, birth + (isqrt(age) + 10)**2."""
    queue = sim.home / "queue"
    now = int(sim.clock.now())
    birth = now - 3600
    due = {msgid: now - 1 - msgid * 7919 % 3000 for msgid in range(1, PASS_MESSAGES + 1)}
    for msgid, t in due.items():
        put(qfn(queue, "mess", msgid), b"Subject: x\n\nbody\n", birth)
        put(qfn(queue, "info", msgid), b"Fa@x.example\0", birth)
        put(qfn(queue, "local", msgid), f"Tu{msgid}@mx.example.org\0".encode(), t)
    deferred = threading.Event()
    lines: list[str] = []

    deferrals = 0

    def log(line: str) -> None:
        nonlocal deferrals
        lines.append(line)
        deferrals += ": deferral: " in line
        if deferrals == PASS_MESSAGES:
            deferred.set()

    channel = ScriptedChannel(script=lambda job: b"Zdeferred for the test.\n")
    daemon = Daemon(sim.ctx, {"local": channel, "remote": channel}, log)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        assert deferred.wait(WAIT)
    finally:
        daemon.terminate()
        thread.join(WAIT)
    assert not thread.is_alive()
    started = [int(m[1]) for x in lines if (m := re.match(r"starting delivery \d+: msg (\d+) ", x))]
    assert started == sorted(due, key=due.__getitem__)
    retry = nextretry(birth, now, "local")
    assert retry == birth + 70 * 70
    stamped = {int(qfn(queue, "local", msgid).stat().st_mtime) for msgid in due}
    assert stamped == {retry}
