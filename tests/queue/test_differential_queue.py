"""Regression test from a differential run of qmail-send against netqmail-1.06.

netqmail logs ``info msg N: bytes B from <> qp P uid 1007`` for a bounce: the
``u`` record qmail-queue wrote holds the uid it ran as, qmails's. Our
qmail-queue, told its invoker, records the uid of the system's matching
qmail user (alias, qmaild, qmails) when the system has one.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from server.home import setup


@pytest.mark.parametrize(("invoker", "user"), [("bounce", "qmails"), ("network", "qmaild")])
def test_u_record_is_the_qmail_users_uid(tmp_path: Path, invoker: str, user: str) -> None:
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        pytest.skip(f"this system has no {user} user (INSTALL.ids)")
    home = tmp_path / "qmail"
    setup(home)
    read_end, write_end = os.pipe()
    os.write(write_end, b"Fa@b\0Tc@d\0\0")
    os.close(write_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "server", "--home", str(home), "qmail-queue"],
            input=b"x\n",
            stdout=read_end,
            env={"PATH": "/usr/bin:/bin", "QMAILSIM_INVOKER": invoker},
            timeout=60,
            check=False,
        )
    finally:
        os.close(read_end)
    assert proc.returncode == 0
    [todo] = [p for p in (home / "queue" / "todo").rglob("*") if p.is_file()]
    assert todo.read_bytes().split(b"\0")[0] == b"u%d" % uid
