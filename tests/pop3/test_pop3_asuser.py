"""checkpassword runs qmail-pop3d as the mailbox's owner (needs root).

Run as root, DJB's checkpassword sets the user's gid and uid before it execs
qmail-pop3d, so a user reads only what the user may. Ours does the same for
a process, and in process forks a child that switches (server.privsep). Bob
plants a link to Alice's message in his Maildir: as Bob, qmail-pop3d cannot
open it; as root it could.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.local.conftest import hand_over
from tests.pop3.test_pop3_programs import NOW, deliver, make_maildir, session

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
