"""The queue service's loop (server.queue.service._Loop) in this process: a
bug of ours while ending one caller's request costs that caller alone, and
a batch's messages are committed at once (server.atonce).

Needs no root: the service runs in a thread as whoever runs the tests, on a
home of theirs; its callers' uid only words the Received line.
"""

from __future__ import annotations

import dataclasses
import io
import socket
import threading
from pathlib import Path
from typing import cast

from server.atonce import THREADS, AtOnce
from server.errors import EXIT_TEMP
from server.privsep import QmailIds
from server.programs import ProgramContext
from server.queue import codes
from server.queue.core import MessageWriter, QueueFailure
from server.queue.envelope import encode_envelope
from server.queue.service import QueueService, _Caller, _commit_one, queue_via
from server.runtime import FileOps, StrPath, real_runtime

ENVELOPE = encode_envelope("a@example.org", ["b@example.org"])
IDS = QmailIds(
    alias=7790,
    qmaild=7791,
    qmaill=7792,
    qmailp=7793,
    qmailq=7794,
    qmailr=7795,
    qmails=7796,
    nofiles=7797,
    qmail=7798,
)


class BrokenOnce(FileOps):
    """The real steps, but the first envelope written into intd/ hits a bug of ours."""

    def __init__(self) -> None:
        self.broke = False
        self.intd = -1

    def open_new(self, path: StrPath, mode: int = 0o644) -> int:
        fd = super().open_new(path, mode)
        if "intd" in str(path):
            self.intd = fd
        return fd

    def write(self, fd: int, data: bytes) -> None:
        if fd == self.intd and not self.broke:
            self.broke = True
            raise RuntimeError("a bug")
        super().write(fd, data)


def test_a_bug_ending_one_request_hangs_up_on_that_caller_alone(home: Path, tmp_path: Path) -> None:
    runtime = dataclasses.replace(real_runtime(), fileops=BrokenOnce())
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO(), inprocess=False)
    path = tmp_path / "queue.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    service = threading.Thread(
        target=QueueService(ctx, IDS).serve_forever, args=(sock,), daemon=True
    )
    service.start()
    try:
        first = queue_via(path, b"Subject: one\n\n1\n", ENVELOPE)
        second = queue_via(path, b"Subject: two\n\n2\n", ENVELOPE)
    finally:
        sock.close()  # the loop's thread is left waiting on it (a daemon)
    assert first[0] == EXIT_TEMP  # no answer: as a crashed qmail-queue, 111 for the caller
    assert second[0] == codes.OK
    queue = home / "queue"
    assert len(list((queue / "todo").iterdir())) == 1
    assert sum(1 for p in (queue / "mess").rglob("*") if p.is_file()) == 1  # the first removed


class Meeting:
    """A MessageWriter's commit() that waits until every message of the batch
    is being committed (so only commits run at once get through), then ends
    as told: queued, a qmail-queue exit code, or a bug of ours."""

    def __init__(self, barrier: threading.Barrier, outcome: int | None = codes.OK) -> None:
        self.barrier = barrier
        self.outcome = outcome

    def commit(self, intdfn: Path) -> int:
        self.barrier.wait()
        if self.outcome is None:
            raise RuntimeError("a bug")
        if self.outcome != codes.OK:
            raise QueueFailure(self.outcome)
        return 1


def test_a_batch_commits_its_messages_at_once_each_failing_alone() -> None:
    outcomes = [codes.OK, codes.WRITE_ERROR, None, codes.OK]
    barrier = threading.Barrier(len(outcomes), timeout=30)
    pairs = [socket.socketpair() for _ in outcomes]
    try:
        callers = [_Caller(conn, 0) for conn, _peer in pairs]
        writing = [
            (caller, cast(MessageWriter, Meeting(barrier, outcome)), Path("intd/1"))
            for caller, outcome in zip(callers, outcomes, strict=True)
        ]
        failed = AtOnce(THREADS, "test commit").map(_commit_one, writing)
    finally:
        for conn, peer in pairs:
            conn.close()
            peer.close()
    assert not barrier.broken  # all four were under way together
    assert failed == [None, None, callers[2], None]  # the bug costs its caller alone
    assert [callers[i].code for i in (0, 1, 3)] == [codes.OK, codes.WRITE_ERROR, codes.OK]
