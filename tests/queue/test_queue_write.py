"""What queue_message leaves on disk, byte for byte, in-process."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.qdir import qfn
from server.queue import codes
from server.queue.client import queue_message
from server.queue.core import message_ids, read_envelope, read_todo
from tests.queue.queue_helpers import RecordingFileOps, make_ctx, queue_files

MESSAGE = b"Subject: hi\n\nhello\n"
RECEIVED_DATE = "14 Nov 2023 22:13:20 -0000"  # the virtual clock's start


def test_queued_files_byte_exact(home: Path) -> None:
    ctx = make_ctx(home)
    result = queue_message(
        ctx, {}, MESSAGE, "alice@example.org", ["bob@far.example", "c@d"], invoker="network"
    )
    assert result.error == ""
    assert result.qp == 1000
    msgid = result.msgid
    assert msgid is not None
    queue = home / "queue"
    mess = qfn(queue, "mess", msgid)
    assert mess == queue / "mess" / str(msgid % 23) / str(msgid)
    assert os.stat(mess).st_ino == msgid
    assert mess.read_bytes() == (
        b"Received: (qmail 1000 invoked from network); 14 Nov 2023 22:13:20 -0000\n" + MESSAGE
    )
    todo = queue / "todo" / str(msgid)
    intd = queue / "intd" / str(msgid)
    assert todo.read_bytes() == b"u1000\0p1000\0Falice@example.org\0Tbob@far.example\0Tc@d\0"
    assert os.stat(todo).st_ino == os.stat(intd).st_ino  # todo/ is a link to intd/
    assert set(queue_files(queue)) == {"mess", "intd", "todo"}
    assert stat.S_IMODE(os.stat(mess).st_mode) & 0o033 == 0
    assert message_ids(queue) == [msgid]
    assert read_envelope(todo) == ("alice@example.org", ["bob@far.example", "c@d"])
    assert read_todo(todo).pid == 1000


@pytest.mark.parametrize(
    ("invoker", "words", "uid"),
    [
        ("network", "invoked from network", 1000),
        ("bounce", "invoked for bounce", 1000),
        ("alias", "invoked by alias", 1000),
        (4321, "invoked by uid 4321", 4321),
        (0, "invoked by uid 0", 0),
    ],
)
def test_received_line_per_invoker(home: Path, invoker: object, words: str, uid: int) -> None:
    ctx = make_ctx(home)
    result = queue_message(ctx, {}, b"x\n", "", ["a@b"], invoker=invoker)  # type: ignore[arg-type]
    assert result.msgid is not None
    queue = home / "queue"
    first = qfn(queue, "mess", result.msgid).read_bytes().split(b"\n")[0]
    assert first == f"Received: (qmail 1000 {words}); {RECEIVED_DATE}".encode()
    assert (queue / "todo" / str(result.msgid)).read_bytes() == b"u%d\0p1000\0F\0Ta@b\0" % uid


def test_date_localtime_patch(home: Path) -> None:
    ctx = make_ctx(home, patches=frozenset({"date-localtime"}))
    result = queue_message(ctx, {"TZ": "Europe/Berlin"}, b"", "", [], invoker="network")
    assert result.msgid is not None
    assert qfn(home / "queue", "mess", result.msgid).read_bytes() == (
        b"Received: (qmail 1000 invoked from network); 14 Nov 2023 23:13:20 +0100\n"
    )


def test_empty_recipient_list_and_null_sender(home: Path) -> None:
    result = queue_message(make_ctx(home), {}, b"", "", [], invoker=7)
    assert result.msgid is not None
    assert (home / "queue" / "todo" / str(result.msgid)).read_bytes() == b"u7\0p1000\0F\0"


def test_steps_in_qmail_queue_order(home: Path) -> None:
    ops = RecordingFileOps()
    result = queue_message(make_ctx(home, fileops=ops), {}, MESSAGE, "a@b", ["c@d"], invoker=1)
    assert result.error == ""
    assert ops.calls == [
        "open_new",  # pid/
        "link",  # mess/
        "unlink",  # pid/
        "write",  # message
        "open_new",  # intd/
        "write",  # envelope
        "fsync_open_in_order",  # message, then envelope
        "link",  # todo/
        "pull_trigger",
    ]


def test_pid_file_name_and_retries(home: Path) -> None:
    queue = home / "queue"
    # pid/<pid>.<starttime>.<seq>, seq 1..9 (qmail-queue.c pidfmt/pidopen).
    for seq in range(1, 9):
        (queue / "pid" / f"1000.1700000000.{seq}").touch()
    ok = queue_message(make_ctx(home), {}, b"", "", [], invoker=1)
    assert ok.error == ""
    (queue / "pid" / "1000.1700000000.9").touch()
    failed = queue_message(make_ctx(home), {}, b"", "", [], invoker=1)
    assert failed.error == "Zqq trouble creating files in queue (#4.3.0)"
    assert failed.msgid is None


def test_missing_home_and_queue(tmp_path: Path) -> None:
    assert queue_message(make_ctx(tmp_path / "nohome"), {}, b"", "", [], invoker=1).error == (
        codes.close_text(codes.HOME_TROUBLE)
    )
    assert queue_message(make_ctx(tmp_path), {}, b"", "", [], invoker=1).error == (
        codes.close_text(codes.QUEUE_DIR_TROUBLE)
    )


def test_too_long_address_in_process(home: Path) -> None:
    result = queue_message(make_ctx(home), {}, b"", "a" * 1003, [], invoker=1)
    assert result.error == "Denvelope address too long for qq (#5.1.3)"
    ok = queue_message(make_ctx(home), {}, b"", "a" * 1002, ["b" * 1002], invoker=1)
    assert ok.error == ""


def test_trigger_is_pulled(home: Path) -> None:
    trigger = home / "queue" / "lock" / "trigger"
    fd = os.open(trigger, os.O_RDONLY | os.O_NONBLOCK)
    try:
        queue_message(make_ctx(home), {}, b"", "", [], invoker=1)
        assert os.read(fd, 10) == b"\0"
    finally:
        os.close(fd)


addresses = st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"]), max_size=60)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sender=addresses, recipients=st.lists(addresses, max_size=4), body=st.binary(max_size=300))
def test_any_envelope_round_trips_through_the_queue(
    home: Path, sender: str, recipients: list[str], body: bytes
) -> None:
    result = queue_message(make_ctx(home), {}, body, sender, recipients, invoker="network")
    assert result.msgid is not None
    queue = home / "queue"
    assert read_envelope(queue / "todo" / str(result.msgid)) == (sender, recipients)
    assert qfn(queue, "mess", result.msgid).read_bytes().endswith(body)
