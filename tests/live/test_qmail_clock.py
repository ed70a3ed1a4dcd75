"""The queue-time fudge (harness.targets.qmailclock) and the reference log's
restarts (harness.targets.qmaillog), on files alone."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from harness.targets.qmailclock import (
    age_maildirs,
    age_queue,
    catch_up,
    earliest_retry,
    jump_to,
)
from harness.targets.qmaillog import QmailLog, _renumber

BIRTH, RETRY = 1_800_000_000, 1_800_000_400


def _queue(root: Path) -> Path:
    home = root / "home"
    for sub in ("mess/7", "info/7", "remote/7", "todo", "lock"):
        (home / "queue" / sub).mkdir(parents=True)
    for sub, when in (("mess", BIRTH), ("info", BIRTH), ("remote", RETRY)):
        path = home / "queue" / sub / "7" / "123"
        path.write_text("x")
        os.utime(path, (when, when))
    record = bytearray(16)
    record[8:12] = BIRTH.to_bytes(4, "little")
    (home / "queue" / "lock" / "tcpto").write_bytes(bytes(record) + bytes(1008))
    return home


def test_age_queue_moves_birth_retry_and_tcpto_back_alike(tmp_path: Path) -> None:
    home = _queue(tmp_path)
    age_queue(home, 3600)
    queue = home / "queue"
    assert (queue / "info" / "7" / "123").stat().st_mtime == BIRTH - 3600
    assert (queue / "remote" / "7" / "123").stat().st_mtime == RETRY - 3600
    assert (queue / "mess" / "7" / "123").stat().st_atime == BIRTH - 3600
    table = (queue / "lock" / "tcpto").read_bytes()
    assert int.from_bytes(table[8:12], "little") == BIRTH - 3600
    assert table[16:] == bytes(1008)  # empty records stay empty
    age_queue(home, -3600)  # and back: younger
    assert (queue / "remote" / "7" / "123").stat().st_mtime == RETRY


def test_catching_up_makes_a_message_born_since_as_young_as_the_scenario_says(
    tmp_path: Path,
) -> None:
    """A message queued before the last catching up lives through all of the
    real time since; one born in between (at BIRTH + 7) only through its own:
    on the simulator both were born at a standing clock."""
    home = _queue(tmp_path)  # message 123, born at BIRTH
    queue = home / "queue"
    for sub, when in (("mess", BIRTH + 7), ("info", BIRTH + 7), ("local", RETRY + 7)):
        (queue / sub / "7").mkdir(parents=True, exist_ok=True)
        path = queue / sub / "7" / "124"
        path.write_text("x")
        os.utime(path, (when, when))
    orphan = queue / "local" / "7" / "125"  # a channel file alone, as a crash may leave
    orphan.write_text("x")
    os.utime(orphan, (RETRY, RETRY))
    catch_up(home, frame=BIRTH, now=BIRTH + 10)
    assert orphan.stat().st_mtime == RETRY + 10  # with the frame: its mtime is no birth
    assert (queue / "info" / "7" / "123").stat().st_mtime == BIRTH + 10
    assert (queue / "remote" / "7" / "123").stat().st_mtime == RETRY + 10
    assert (queue / "info" / "7" / "124").stat().st_mtime == BIRTH + 10
    assert (queue / "local" / "7" / "124").stat().st_mtime == RETRY + 10  # with its birth
    assert (queue / "mess" / "7" / "124").stat().st_atime == BIRTH + 10
    table = (queue / "lock" / "tcpto").read_bytes()
    assert int.from_bytes(table[8:12], "little") == BIRTH + 10


def test_a_jump_ages_the_mail_delivered_so_far(tmp_path: Path) -> None:
    """qmail-pop3d lists by mtime: a message delivered before an ``advance``
    stays older than one delivered after it, in the same real second."""
    maildir = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.a").write_text("x")
    os.utime(maildir / "new" / "1.a", (BIRTH, BIRTH))
    (maildir / "cur" / "2.b:2,").write_text("x")
    os.utime(maildir / "cur" / "2.b:2,", (BIRTH, BIRTH))
    age_maildirs([maildir, tmp_path / "none"], 60)
    assert (maildir / "new" / "1.a").stat().st_mtime == BIRTH - 60
    assert (maildir / "cur" / "2.b:2,").stat().st_mtime == BIRTH - 60


def test_earliest_retry_is_todo_first_then_the_earliest_channel_file(tmp_path: Path) -> None:
    home = _queue(tmp_path)
    assert earliest_retry(home, 5.0) == RETRY
    (home / "queue" / "todo" / "124").write_text("x")
    assert earliest_retry(home, 5.0) == 5.0
    empty = tmp_path / "empty"
    (empty / "queue" / "todo").mkdir(parents=True)
    assert earliest_retry(empty, 5.0) is None


def test_jump_lands_on_the_retry_plus_sleep_fuzz() -> None:
    assert jump_to(RETRY, BIRTH + 0.25) == 401  # as the simulator: due + SLEEP_FUZZ
    assert jump_to(BIRTH, RETRY) == 0  # already due: no jump


def test_restarts_are_hidden_and_deliveries_numbered_on(tmp_path: Path) -> None:
    log = QmailLog(tmp_path / "send.log")
    first = [
        "status: local 0/10 remote 0/20",
        "starting delivery 1: msg 5 to local a@b",
        "delivery 1: deferral: busy/",
    ]
    log.path.write_text("".join(f"{x}\n" for x in first))
    before = len(log.raw())
    with open(log.path, "a") as out:
        out.write("status: exiting\n")
    log.hide_since(before)
    raw = len(log.raw())
    with open(log.path, "a") as out:
        out.write("status: local 0/10 remote 0/20\nstarting delivery 1: msg 5 to local a@b\n")
        out.write("delivery 1: success: did_1+0+0/\n")
    log.restarted_at(raw)
    assert log.lines() == [
        *first,
        "starting delivery 2: msg 5 to local a@b",
        "delivery 2: success: did_1+0+0/",
    ]


@given(st.text(), st.integers(min_value=0, max_value=10**6))
def test_renumber_touches_only_delivery_numbers(line: str, offset: int) -> None:
    out = _renumber(line, offset)
    if not line.startswith(("starting delivery ", "delivery ")):
        assert out == line
