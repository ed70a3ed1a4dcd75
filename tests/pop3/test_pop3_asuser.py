"""checkpassword runs qmail-pop3d as the mailbox's owner (needs root).

Run as root, DJB's checkpassword sets the user's gid and uid before it execs
qmail-pop3d, so a user reads only what the user may. Ours does the same for
a process; in process the simulator's session goes to a warm worker of the
user (server.privsep.WORKERS), or a child forked for it when the session
cannot be pickled, and a live session to a forked child. Bob
plants a link to Alice's message in his Maildir: as Bob, qmail-pop3d cannot
open it; as root it could.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import pytest

from harness.converse import PacedInput
from server import privsep
from server.pop3 import checkpassword
from server.programs import ProgramContext, run
from server.runtime import virtual_runtime
from tests.local.conftest import hand_over
from tests.pop3.test_pop3_programs import ARGV, NOW, deliver, make_maildir, session

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing uids needs root")

ALICE, BOB = (4501, 4501), (4502, 4502)
SECRET = b"Subject: for alice only\n\nthe secret\n"


@pytest.fixture
def homes(tmp_path: Path) -> tuple[Path, Path, Path]:
    home = tmp_path / "qmail"
    (home / ".qmail-sim").mkdir(parents=True)
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    deliver(make_maildir(alice / "Maildir"), "new", f"{NOW - 60}.1.h", SECRET, NOW - 60)
    make_maildir(bob / "Maildir")
    hand_over(alice, *ALICE)
    hand_over(bob, *BOB)
    os.chmod(alice, 0o700)  # Alice's mail is Alice's
    link = bob / "Maildir" / "new" / f"{NOW - 50}.2.h"
    link.symlink_to(alice / "Maildir" / "new" / f"{NOW - 60}.1.h")
    os.lchown(link, *BOB)
    passwords = f"alice:sesame:{alice}\nbob:hunter2:{bob}\n"
    (home / ".qmail-sim" / "passwords").write_text(passwords)
    return home, alice, bob


def test_a_user_cannot_read_another_users_mail(homes: tuple[Path, Path, Path]) -> None:
    home, _alice, _bob = homes
    out = session(home, b"USER bob\r\nPASS hunter2\r\nLIST\r\nRETR 1\r\nQUIT\r\n")
    assert b"the secret" not in out
    assert out.count(b"+OK ") >= 3  # logged in and answered, as Bob


def test_the_owner_reads_her_own(homes: tuple[Path, Path, Path]) -> None:
    home, _alice, _bob = homes
    out = session(home, b"USER alice\r\nPASS sesame\r\nRETR 1\r\nQUIT\r\n")
    assert b"the secret" in out


def test_qmail_pop3d_moves_mail_as_the_user(homes: tuple[Path, Path, Path]) -> None:
    home, alice, _bob = homes
    session(home, b"USER alice\r\nPASS sesame\r\nSTAT\r\nQUIT\r\n")
    (moved,) = (alice / "Maildir" / "cur").iterdir()
    assert moved.stat().st_uid == ALICE[0]


def test_a_session_goes_to_the_users_warm_worker(
    homes: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _alice, _bob = homes

    def no_fork(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("a picklable session needs no fork")

    monkeypatch.setattr(privsep, "run_as", no_fork)
    first = session(home, b"USER alice\r\nPASS sesame\r\nRETR 1\r\nQUIT\r\n")
    again = session(home, b"USER alice\r\nPASS sesame\r\nRETR 1\r\nQUIT\r\n")
    assert b"the secret" in first
    assert again == first  # the worker keeps nothing of the first session


def popup(home: Path, client: bytes, *, picklable: bool) -> tuple[bytes, bytes]:
    """qmail-popup's chain in process, the client paced a line at a time;
    its output and stderr. Not ``picklable``: the runtime holds a closure."""
    runtime, _ = virtual_runtime(start=NOW, first_pid=777)
    if not picklable:
        runtime = dataclasses.replace(runtime, next_pid=lambda: 777)
    err, out = io.BytesIO(), io.BytesIO()
    ctx = ProgramContext(home=home, runtime=runtime, stderr=err)
    run("qmail-popup", list(ARGV), {}, PacedInput(client), out, ctx)
    return out.getvalue(), err.getvalue()


def test_a_session_that_cannot_be_pickled_runs_in_a_forked_child(
    homes: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _alice, _bob = homes
    client = b"USER bob\r\nPASS hunter2\r\nLIST\r\nRETR 1\r\nQUIT\r\n"
    in_worker = popup(home, client, picklable=True)

    def no_worker(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("a session that cannot be pickled is forked")

    monkeypatch.setattr(privsep.WORKERS, "start", no_worker)
    forked = popup(home, client, picklable=False)
    assert forked == in_worker
    assert b"the secret" not in forked[0]


@pytest.mark.parametrize("outcome", [(b"not fields", 0), (None, 9)])
def test_a_worker_that_dies_or_answers_nonsense_is_a_temporary_failure(
    homes: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    outcome: tuple[bytes | None, int],
) -> None:
    home, alice, _bob = homes

    class Answered:
        def wait(self) -> tuple[bytes | None, int]:
            return outcome

    monkeypatch.setattr(privsep.WORKERS, "start", lambda *_args: Answered())
    runtime, _ = virtual_runtime(start=NOW)
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO(), cwd=alice)
    prog = checkpassword._Prog("qmail-pop3d", ["qmail-pop3d", "Maildir"], {}, ctx)
    out = io.BytesIO()
    assert checkpassword._in_memory(ALICE, prog, io.BytesIO(b"QUIT\r\n"), out) == 111
    assert out.getvalue() == b""
