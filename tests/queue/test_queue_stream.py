"""A message queued in pieces (server.queue.client.open_queue), as qmail-queue reads its pipe.

What is queued must not depend on how the message was cut; every durable
step keeps qmail-queue's order, a crash anywhere leaves a state of the
table, and a message given up on leaves nothing.
"""

from __future__ import annotations

import itertools
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.home import setup
from server.queue import codes
from server.queue.client import QueueStream, open_queue, queue_message
from server.queue.core import apply_cleanup, scan_queue
from server.queue.states import OSSIFIED, STATES, stale_cleanup_actions
from server.runtime import Crash, FileOps
from tests.queue.queue_helpers import FaultyFileOps, RecordingFileOps, make_ctx, queue_files

MESSAGE = b"Subject: stream\n\n" + b"".join(b"line %d\n" % i for i in range(200))
RECEIVED = b"Received: (qmail 1000 invoked from network); 14 Nov 2023 22:13:20 -0000\n"
ENVELOPE_FILE = b"u1000\0p1000\0Fa@b\0Tc@d\0"


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


def _stream(stream: QueueStream, pieces: list[bytes]) -> None:
    for piece in pieces:
        stream.put(piece)


def _empty_queue(queue: Path) -> None:
    for files in queue_files(queue).values():
        for path in files:
            path.unlink()


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("stream") / "qmail"
    setup(home, me="mx.example.org")
    return home


@settings(max_examples=60, deadline=None)
@given(
    message=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
)
def test_pieces_of_any_size_queue_what_the_whole_message_queues(
    shared_home: Path, message: bytes, cuts: list[int]
) -> None:
    queue = shared_home / "queue"
    _empty_queue(queue)
    whole = queue_message(make_ctx(shared_home), {}, message, "a@b", ["c@d"], invoker="network")
    stream = open_queue(make_ctx(shared_home), {}, invoker="network")
    _stream(stream, _pieces(message, cuts))
    streamed = stream.close("a@b", ["c@d"])
    assert whole.ok and streamed.ok and whole.qp == streamed.qp
    assert whole.msgid is not None and streamed.msgid is not None
    files = queue_files(queue)
    assert len(files["mess"]) == 2 and len(files["todo"]) == 2
    assert {p.read_bytes() for p in files["mess"]} == {RECEIVED + message}
    assert {p.read_bytes() for p in files["todo"]} == {ENVELOPE_FILE}


def test_streamed_steps_keep_qmail_queues_order(home: Path) -> None:
    ops = RecordingFileOps()
    stream = open_queue(make_ctx(home, fileops=ops), {}, invoker="network")
    assert ops.calls == ["open_new", "link", "unlink"]  # before any of the message
    _stream(stream, [b"a\n", b"b\n", b"c\n"])
    assert ops.calls[3:] == ["write"] * 3
    assert stream.close("a@b", ["c@d"]).ok
    # nothing more of the message; intd, then both fsync'd in order, then todo
    assert ops.calls[6:] == ["open_new", "write", "fsync_open_in_order", "link", "pull_trigger"]


PIECES = [MESSAGE[:100], MESSAGE[100:1000], MESSAGE[1000:]]
#: The FileOps calls of a message in three pieces, and the state (STATES)
#: each call finds the queue in.
STREAM_STEPS = [
    ("open_new", "S1"),
    ("link", "P1"),
    ("unlink", "P2"),
    ("write", "S2"),
    ("write", "S2"),
    ("write", "S2"),
    ("open_new", "S2"),
    ("write", "S3"),
    ("fsync_open_in_order", "S3"),
    ("link", "S3"),
    ("pull_trigger", "S4"),
]


def _assert_in_state(queue: Path, name: str) -> None:
    state = STATES[name]
    dirs = set(queue_files(queue))
    assert state.files <= dirs <= state.files | state.maybe, (name, dirs)


def _clean_after_36_hours(queue: Path) -> None:
    listing = scan_queue(queue)
    atimes = [*listing.pid.values(), *listing.mess.values()]
    if atimes:
        now = max(atimes) + OSSIFIED + 1
        apply_cleanup(queue, stale_cleanup_actions(listing, now), FileOps())


@pytest.mark.parametrize(
    ("k", "before"),
    list(enumerate(STREAM_STEPS, 1)),
    ids=[f"{i}-{s[0]}" for i, s in enumerate(STREAM_STEPS, 1)],
)
def test_crash_at_every_step_of_a_streamed_message(
    home: Path, k: int, before: tuple[str, str]
) -> None:
    op, state = before
    queue = home / "queue"
    ops = FaultyFileOps(at=k, crash=True)
    with pytest.raises(Crash):
        stream = open_queue(make_ctx(home, fileops=ops), {}, invoker="network")
        _stream(stream, PIECES)
        stream.close("a@b", ["c@d"])
    assert ops.calls[-1] == op
    _assert_in_state(queue, state)
    files = queue_files(queue)
    if "mess" in files:  # what reached mess/ is a beginning of the message, never more
        assert (RECEIVED + MESSAGE).startswith(files["mess"][0].read_bytes())
    if "todo" in files:
        assert files["todo"][0].read_bytes() == ENVELOPE_FILE
    _clean_after_36_hours(queue)
    if state == "S4":
        assert set(queue_files(queue)) == {"mess", "intd", "todo"}
        assert files["mess"][0].read_bytes() == RECEIVED + MESSAGE
    else:
        assert queue_files(queue) == {}


def test_a_write_error_while_streaming_is_53_and_leaves_nothing(home: Path) -> None:
    ops = FaultyFileOps(at=5, crash=False)  # the second piece
    stream = open_queue(make_ctx(home, fileops=ops), {}, invoker="network")
    _stream(stream, PIECES)
    assert ops.calls.count("write") == 2  # qmail-queue died: nothing more is written
    result = stream.close("a@b", ["c@d"])
    assert result.error == codes.close_text(codes.WRITE_ERROR)
    assert result.msgid is None
    assert queue_files(home / "queue") == {}


def test_abandon_leaves_nothing(home: Path) -> None:
    stream = open_queue(make_ctx(home), {}, invoker="network")
    _stream(stream, PIECES[:2])
    stream.abandon()
    stream.abandon()  # twice is harmless
    assert queue_files(home / "queue") == {}


def test_a_failure_before_the_message_comes_at_close(home: Path) -> None:
    (home / "queue").rename(home / "elsewhere")
    stream = open_queue(make_ctx(home), {}, invoker="network")
    _stream(stream, PIECES)
    whole = queue_message(make_ctx(home), {}, MESSAGE, "a@b", ["c@d"], invoker="network")
    assert stream.close("a@b", ["c@d"]) == whole
    assert whole.error == codes.close_text(codes.QUEUE_DIR_TROUBLE)


# --- a queue program as a process ---------------------------------------------


def test_bin_qmail_queue_gets_the_pieces_down_its_pipe(home: Path) -> None:
    stream = open_queue(make_ctx(home, inprocess=False), {}, invoker="network")
    _stream(stream, PIECES)
    result = stream.close("a@b", ["c@d"])
    assert result.ok, result
    [mess] = queue_files(home / "queue")["mess"]
    received, rest = mess.read_bytes().split(b"\n", 1)
    assert b"invoked from network" in received
    assert rest == MESSAGE


def test_bin_qmail_queue_abandoned_queues_nothing(home: Path) -> None:
    stream = open_queue(make_ctx(home, inprocess=False), {}, invoker="network")
    _stream(stream, PIECES[:2])
    stream.abandon()  # closes both pipes and waits: qmail-queue exits 54
    assert queue_files(home / "queue") == {}


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qq"
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_program_that_stops_reading_is_flagerr(home: Path, tmp_path: Path) -> None:
    qq = _script(tmp_path, "exit 0\n")
    stream = open_queue(make_ctx(home), {"QMAILQUEUE": str(qq)}, invoker="network")
    for _ in range(64):  # far more than a pipe holds
        stream.put(b"x" * 65535 + b"\n")
    # qmail.c: exit 0 with the message not all written is "qq read error"
    assert stream.close("a@b", ["c@d"]).error == codes.close_text(codes.READ_ERROR)


def test_a_program_that_cannot_start(home: Path, tmp_path: Path) -> None:
    env = {"QMAILQUEUE": str(tmp_path / "absent")}
    stream = open_queue(make_ctx(home), env, invoker="network")
    _stream(stream, PIECES)
    result = stream.close("a@b", ["c@d"])
    assert result.error == codes.close_text(codes.CANNOT_EXEC)
    assert result.qp == 0
