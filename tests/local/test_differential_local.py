"""Regression tests from a differential run against a real netqmail-1.06 qmail-local.

Each expectation here is what the real qmail-local (built from netqmail-1.06,
run as a process with the same argv, home and message) printed, byte for
byte, on its stdout and stderr, and the exit code it returned. Our
bin/qmail-local runs as a process too, so the split between fd 1 and fd 2
is what a user of the program sees.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from server.local.getpw import Nughde, TablePasswd, getpw

from .conftest import make_user_home

MESSAGE = b"Subject: hi\n\nbody\n"


def run_local(qhome: Path, user_home: Path, *flags: str) -> tuple[int, bytes, bytes, Path]:
    msg = user_home.parent / "message"
    msg.write_bytes(MESSAGE)
    argv = [*flags, "joe", str(user_home), "joe", "", "", "ex.org", "a@x.org", "./Mailbox"]
    with open(msg, "rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "server", "--home", str(qhome), "qmail-local", *argv],
            stdin=stdin,
            capture_output=True,
            env={"PATH": "/usr/bin:/bin"},
            timeout=60,
            check=False,
        )
    return proc.returncode, proc.stdout, proc.stderr, user_home / "Mailbox"


def test_command_output_stays_on_stdout_when_it_fails(qhome: Path, tmp_path: Path) -> None:
    # qmail-local's children inherit its fd 1: "echo" lands on stdout even
    # when the command's exit 100 makes qmail-local exit 100 (which prints nothing).
    home = make_user_home(tmp_path, "joe", {"": "|echo nope; exit 100\n./Mailbox\n"})
    assert run_local(qhome, home)[:3] == (100, b"nope\n", b"")


def test_command_stderr_stays_on_stderr(qhome: Path, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "|cat >&2\n"})
    assert run_local(qhome, home)[:3] == (0, b"did 0+0+1\n", MESSAGE)


def test_sticky_home_warning_goes_to_stderr(qhome: Path, tmp_path: Path) -> None:
    # strerr_warn1() writes to fd 2; sayit() and "did" to fd 1.
    home = make_user_home(tmp_path, "joe")
    os.chmod(home, 0o1755)
    assert run_local(qhome, home, "-n")[:3] == (
        0,
        b"mbox ./Mailbox\ndid 1+0+0\n",
        b"Warning: home directory is sticky.\n",
    )


def test_dotqmail_directory_is_skipped(qhome: Path, tmp_path: Path) -> None:
    # qmeexists(): open_read() of a directory succeeds, fstat() says it is not
    # a regular file, so it counts as absent and the default delivery runs.
    home = make_user_home(tmp_path, "joe")
    (home / ".qmail").mkdir()
    code, out, err, mbox = run_local(qhome, home)
    assert (code, out, err) == (0, b"did 1+0+0\n", b"")
    assert mbox.read_bytes().split(b"\n", 1)[1] == (
        b"Return-Path: <a@x.org>\nDelivered-To: joe@ex.org\n" + MESSAGE + b"\n"
    )


def _run(qhome: Path, name: str, argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "server", "--home", str(qhome), name, *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stderr


def test_bad_options_get_sgetopts_complaint(qhome: Path) -> None:
    # sgetopt.c prints "NAME: illegal option -- x" (or "option requires an
    # argument -- c") before the program's own reaction.
    usage = (
        b"qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain"
        b" sender aliasempty\n"
    )
    assert _run(qhome, "qmail-local", ["-x"], {}) == (
        100,
        b"qmail-local: illegal option -- x\n" + usage,
    )
    lines = {"UFLINE": "From a\n", "RPLINE": "R\n", "DTLINE": "D\n"}
    assert _run(qhome, "preline", ["-x", "cat"], lines) == (
        100,
        b"preline: illegal option -- x\npreline: usage: preline cmd [ arg ... ]\n",
    )
    assert _run(qhome, "qmail-pw2u", ["-z"], {}) == (100, b"qmail-pw2u: illegal option -- z\n")
    assert _run(qhome, "qmail-pw2u", ["-c"], {}) == (
        100,
        b"qmail-pw2u: option requires an argument -- c\n",
    )


def test_newu_bad_assign_leaves_an_empty_cdb_tmp(qhome: Path) -> None:
    # qmail-newu.c truncates users/cdb.tmp before reading users/assign.
    (qhome / "users" / "assign").write_bytes(b"=a:b:c\n")
    assert _run(qhome, "qmail-newu", [], {}) == (
        111,
        b"qmail-newu: fatal: bad format in users/assign\n",
    )
    assert (qhome / "users" / "cdb.tmp").read_bytes() == b""


def test_alias_as_a_local_part_is_the_alias_user(qhome: Path) -> None:
    # netqmail's qmail-getpw finds the passwd user alias (its home is owned by
    # it in a standard install): "alias" is alias with no extension, and
    # "alias-postmaster" is alias with extension "postmaster", not
    # "alias-postmaster" (which would look for .qmail-alias-postmaster).
    passwd = TablePasswd(qhome, uid=1000)
    assert getpw("alias", passwd) == Nughde(
        user="alias", uid=1000, gid=1000, home=str(qhome / "alias"), dash="", ext=""
    )
    assert getpw("ALIAS-Postmaster", passwd).ext == "Postmaster"
    assert getpw("nosuch", passwd).ext == "nosuch"


@pytest.mark.skipif(os.geteuid() != 0, reason="qmail-getpw reports system ids only as root")
def test_getpw_as_root_reports_the_system_alias_ids(qhome: Path) -> None:
    try:
        alias = pwd.getpwnam("alias")
    except KeyError:
        pytest.skip("this system has no alias user (INSTALL.ids)")
    proc = subprocess.run(
        [sys.executable, "-m", "server", "--home", str(qhome), "qmail-getpw", "nosuch"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    want = f"alias\0{alias.pw_uid}\0{alias.pw_gid}\0{qhome / 'alias'}\0-\0nosuch\0"
    assert (proc.returncode, proc.stdout) == (0, want.encode())


@pytest.mark.parametrize(("name", "reader"), [("qail", "Mail"), ("elq", "elm"), ("pinq", "pine")])
def test_mail_reader_scripts(qhome: Path, tmp_path: Path, name: str, reader: str) -> None:
    # netqmail's qail.sh/elq.sh/pinq.sh: maildir2mbox && exec READER "$@".
    assert _run(qhome, name, [], {}) == (111, b"maildir2mbox: fatal: MAIL not set\n")
    for sub in ("new", "cur", "tmp"):
        (tmp_path / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / reader
    fake.write_text('#!/bin/sh\necho "$# $*" >&2\n')
    fake.chmod(0o755)
    env = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "MAILDIR": str(tmp_path / "Maildir"),
        "MAIL": str(tmp_path / "mbox"),
        "MAILTMP": str(tmp_path / "mbox.tmp"),
    }
    assert _run(qhome, name, ["a", "b c"], env) == (0, b"2 a b c\n")
    fake.unlink()
    assert _run(qhome, name, [], env) == (
        127,
        f"{qhome}/bin/{name}: 3: exec: {reader}: not found\n".encode(),
    )
