"""The 36-hour cleanup of qmail-send.c cleanup_do() and qmail-clean.c cleanuppid()."""

from __future__ import annotations

import os
from pathlib import Path

from server.qdir import qfn
from server.queue.core import apply_cleanup, scan_queue
from server.queue.states import (
    OSSIFIED,
    CleanMessage,
    QueueListing,
    RemovePid,
    stale_cleanup_actions,
)
from server.runtime import FileOps
from tests.queue.queue_helpers import RecordingFileOps, queue_files

A = 1_700_000_000


def test_pid_file_removed_from_36_hours_on() -> None:
    listing = QueueListing(pid={"123.1700000000.1": A})
    assert stale_cleanup_actions(listing, A + OSSIFIED - 1) == []
    # qmail-clean.c: "if (time < st.st_atime + OSSIFIED) continue;"
    assert stale_cleanup_actions(listing, A + OSSIFIED) == [RemovePid("123.1700000000.1")]


def test_mess_removed_after_36_hours() -> None:
    listing = QueueListing(mess={457: A})
    # qmail-send.c: "if (recent <= st.st_atime + OSSIFIED) return;"
    assert stale_cleanup_actions(listing, A + OSSIFIED) == []
    assert stale_cleanup_actions(listing, A + OSSIFIED + 1) == [CleanMessage(457)]


def test_queued_preprocessed_and_busy_messages_are_kept() -> None:
    listing = QueueListing(mess={1: A, 2: A, 3: A, 4: A}, info=frozenset({1}), todo=frozenset({2}))
    late = A + 10 * OSSIFIED
    assert stale_cleanup_actions(listing, late, busy={3}) == [CleanMessage(4)]


def _age(path: Path, seconds: int) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))


def test_on_disk(home: Path) -> None:
    queue = home / "queue"
    stale_pid = queue / "pid" / "99.1.1"
    fresh_pid = queue / "pid" / "98.1.1"
    for p in (stale_pid, fresh_pid):
        p.touch()
    # A stale S3 message (mess + intd), a stale queued one (todo), a fresh S2.
    for msgid in (1000, 1001, 1002):
        qfn(queue, "mess", msgid).write_bytes(b"m")
    qfn(queue, "intd", 1000).write_bytes(b"u1\0")
    qfn(queue, "intd", 1001).write_bytes(b"u1\0p2\0F\0")
    os.link(qfn(queue, "intd", 1001), qfn(queue, "todo", 1001))
    for path in (stale_pid, qfn(queue, "mess", 1000), qfn(queue, "mess", 1001)):
        _age(path, OSSIFIED + 100)
    listing = scan_queue(queue)
    assert set(listing.pid) == {"99.1.1", "98.1.1"}
    assert set(listing.mess) == {1000, 1001, 1002}
    assert listing.todo == frozenset({1001})
    now = int(fresh_pid.stat().st_atime)
    actions = stale_cleanup_actions(listing, now)
    assert actions == [RemovePid("99.1.1"), CleanMessage(1000)]
    ops = RecordingFileOps()
    assert apply_cleanup(queue, actions, ops) == [True, True]
    assert ops.calls == ["unlink", "unlink", "unlink"]  # pid; intd then mess
    left = {sub: [p.name for p in paths] for sub, paths in queue_files(queue).items()}
    assert left == {
        "pid": ["98.1.1"],
        "mess": ["1001", "1002"],
        "intd": ["1001"],
        "todo": ["1001"],
    }


def test_cleanup_of_missing_files_succeeds(home: Path) -> None:
    queue = home / "queue"
    assert apply_cleanup(queue, [RemovePid("x"), CleanMessage(5)], FileOps()) == [True, True]
