"""qmail-popup -> checkpassword -> qmail-pop3d over real Maildirs, in-process and as processes."""

from __future__ import annotations

import hashlib
import io
import mailbox
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.converse import PacedInput
from server.home import setup
from server.maildirscan import TMP_MAX_AGE, clean_tmp
from server.pop3 import replies
from server.pop3.maildir import scan
from server.programs import ProgramContext, run
from server.runtime import virtual_runtime
from server.send.prioq import Prioq

NOW = 1_700_000_000
HOST = "pop.example.org"
ARGV = ["qmail-popup", HOST, "checkpassword", "qmail-pop3d", "Maildir"]


def make_maildir(path: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def deliver(maildir: Path, sub: str, name: str, data: bytes, mtime: int) -> Path:
    path = maildir / sub / name
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """A qmail home with a password file and alice's home with a Maildir."""
    home = tmp_path / "qmail"
    (home / ".qmail-sim").mkdir(parents=True)
    alice = tmp_path / "alice"
    md = make_maildir(alice / "Maildir")
    deliver(md, "new", "1700000100.1.h", b"Subject: two\n\nsecond\n", NOW - 50)
    deliver(md, "cur", "1700000000.1.h:2,S", b"Subject: one\n\n.first\n", NOW - 100)
    (home / ".qmail-sim" / "passwords").write_text(f"# users\nalice:sesame:{alice}\n")
    return home, alice


def session(
    home: Path, client: bytes, env: dict[str, str] | None = None, *, paced: bool = True
) -> bytes:
    """qmail-popup's chain in process; the client waits for each reply unless
    not ``paced`` (then all its bytes have arrived before the first read)."""
    runtime, _ = virtual_runtime(start=NOW, first_pid=777)
    err = io.BytesIO()
    ctx = ProgramContext(home=home, runtime=runtime, stderr=err)
    out = io.BytesIO()
    stdin = PacedInput(client) if paced else io.BytesIO(client)
    code = run("qmail-popup", list(ARGV), env or {}, stdin, out, ctx)
    assert code == 1  # qmail-popup's die() is _exit(1), always
    return out.getvalue()


LOGIN = b"USER alice\r\nPASS sesame\r\n"
BANNER = b"+OK <777.1700000000@pop.example.org>\r\n"


def test_full_session(world: tuple[Path, Path]) -> None:
    home, alice = world
    out = session(home, LOGIN + b"STAT\r\nUIDL\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n")
    assert out == (
        BANNER
        + b"+OK \r\n+OK \r\n"
        + b"+OK 2 42\r\n"
        + b"+OK \r\n1 1700000000.1.h\r\n2 1700000100.1.h\r\n.\r\n"
        + b"+OK \r\nSubject: one\r\n\r\n..first\r\n\r\n.\r\n"
        + b"+OK \r\n+OK \r\n"
    )
    md = mailbox.Maildir(alice / "Maildir", create=False)
    try:
        assert [m["Subject"] for m in md] == ["two"]
        assert sorted(os.listdir(alice / "Maildir" / "cur")) == ["1700000100.1.h:2,"]
        assert os.listdir(alice / "Maildir" / "new") == []
    finally:
        md.close()


def test_wrong_password_and_unknown_user(world: tuple[Path, Path]) -> None:
    home, _ = world
    assert session(home, b"USER alice\r\nPASS nope\r\n") == BANNER + b"+OK \r\n" + (
        replies.AUTH_FAILED
    )
    assert session(home, b"USER bob\r\nPASS sesame\r\n").endswith(b"-ERR authorization failed\r\n")


def test_commands_before_login(world: tuple[Path, Path]) -> None:
    home, _ = world
    out = session(home, b"STAT\r\nPASS x\r\nNOOP\r\nQUIT\r\nUSER alice\r\n")
    assert out == BANNER + (b"-ERR authorization first\r\n-ERR USER first\r\n+OK \r\n+OK \r\n")


def test_apop(world: tuple[Path, Path]) -> None:
    home, _ = world
    digest = hashlib.md5(b"<777.1700000000@pop.example.org>sesame").hexdigest().encode()
    out = session(home, b"APOP alice " + digest + b"\r\nSTAT\r\nQUIT\r\n")
    assert out == BANNER + b"+OK \r\n+OK 2 42\r\n+OK \r\n"


def test_commands_sent_with_pass_are_lost_in_process_too(world: tuple[Path, Path]) -> None:
    """qmail-popup's 128-byte read took them; qmail-pop3d greets and meets end
    of input (tests/pop3/test_differential_pop3.py, the same as processes)."""
    home, alice = world
    out = session(home, LOGIN + b"DELE 1\r\nQUIT\r\n", paced=False)
    assert out == BANNER + b"+OK \r\n+OK \r\n"
    assert len(os.listdir(alice / "Maildir" / "cur")) == 1


def test_paced_input_reads_stop_at_each_turn() -> None:
    stdin = PacedInput(b"USER a\r\nPASS b\r\nSTAT\r\n", turns=[8, 14])
    assert stdin.read1(128) == b"USER a\r\n"
    assert stdin.read1(3) == b"PAS"
    assert stdin.read1(128) == b"S b\r\nSTAT\r\n"
    assert stdin.read1(128) == b""
    assert PacedInput(b"a\nb\n").read1(128) == b"a\n"  # a line a turn by default


def test_end_of_input_changes_nothing(world: tuple[Path, Path]) -> None:
    home, alice = world
    session(home, LOGIN + b"DELE 1\r\nDELE 2\r\n")
    assert len(os.listdir(alice / "Maildir" / "new")) == 1
    assert len(os.listdir(alice / "Maildir" / "cur")) == 1


def test_missing_maildir(world: tuple[Path, Path], tmp_path: Path) -> None:
    home, _ = world
    nomail = tmp_path / "bob"
    nomail.mkdir()
    (home / ".qmail-sim" / "passwords").write_text(f"bob:pw:{nomail}\n")
    out = session(home, b"USER bob\r\nPASS pw\r\n")
    assert out.endswith(b"+OK \r\n-ERR this user has no $HOME/Maildir\r\n")


def test_missing_password_file_is_temporary(world: tuple[Path, Path], tmp_path: Path) -> None:
    home, _ = world
    env = {"QMAILSIM_PASSWORDS": str(tmp_path / "nothere")}
    assert session(home, LOGIN, env).endswith(replies.AUTH_FAILED)


def test_maildir_changed_mid_session(world: tuple[Path, Path]) -> None:
    """Another process (a second POP3 session) took message 1 away."""
    home, alice = world
    runtime, _ = virtual_runtime(start=NOW, first_pid=777)
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())

    class Sneaky(PacedInput):
        def readline(self, size: int | None = -1) -> bytes:
            line = super().readline(size)
            if line.startswith(b"RETR"):
                for name in os.listdir(alice / "Maildir" / "cur"):
                    os.unlink(alice / "Maildir" / "cur" / name)
            return line

    out = io.BytesIO()
    client = LOGIN + b"RETR 1\r\nDELE 1\r\nRETR 2\r\nQUIT\r\n"
    run("qmail-popup", list(ARGV), {}, Sneaky(client), out, ctx)
    text = out.getvalue()
    assert b"-ERR unable to open that message\r\n" in text
    # DELE of the vanished message: its unlink fails at QUIT, the rest is kept
    assert text.endswith(b"-ERR unable to unlink all deleted messages\r\n+OK \r\n")
    assert os.listdir(alice / "Maildir" / "cur") == ["1700000100.1.h:2,"]


def test_scan_skips_this_second_dot_files_and_orders_by_mtime(tmp_path: Path) -> None:
    md = make_maildir(tmp_path / "Maildir")
    deliver(md, "new", "c", b"c", NOW)  # delivered this second: left for later
    deliver(md, "new", ".hidden", b"x", NOW - 9)
    deliver(md, "cur", "a:2,", b"aa", NOW - 30)
    deliver(md, "new", "b", b"bbb", NOW - 20)
    assert scan(md, NOW) == [("cur/a:2,", 2), ("new/b", 3)]
    assert [p for p, _ in scan(md, NOW + 1)] == ["cur/a:2,", "new/b", "new/c"]


def test_clean_tmp(tmp_path: Path) -> None:
    md = make_maildir(tmp_path / "Maildir")
    old = deliver(md, "tmp", "old", b"", NOW - TMP_MAX_AGE - 1)
    young = deliver(md, "tmp", "young", b"", NOW - TMP_MAX_AGE)
    assert clean_tmp(md, NOW) == ["old"]
    assert not old.exists() and young.exists()


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=40))
@settings(max_examples=200)
def test_prioq_pops_in_mtime_order(times: list[int]) -> None:
    q = Prioq()
    for i, t in enumerate(times):
        q.insert(t, i)
    popped = []
    while (item := q.min()) is not None:
        q.delmin()
        popped.append((item.dt, item.id))
    assert [t for t, _ in popped] == sorted(times)
    assert sorted(i for _, i in popped) == list(range(len(times)))


# -- as processes: the real fd 3 pipe ---------------------------------------------


@pytest.mark.live
def test_as_processes(world: tuple[Path, Path], tmp_path: Path) -> None:
    home, alice = world
    setup(home, me=HOST)
    wrapper = tmp_path / "checkpassword"
    wrapper.write_text(
        f'#!/bin/sh\nexec {sys.executable} -m server --home {home} checkpassword "$@"\n'
    )
    wrapper.chmod(0o755)
    argv = [sys.executable, "-m", "server", "--home", str(home), "qmail-popup", HOST]
    argv += [str(wrapper), str(home / "bin" / "qmail-pop3d"), "Maildir"]
    # A client that waits for qmail-pop3d's greeting before its next command:
    # qmail-popup reads 128 bytes at a time, so commands sent along with
    # PASS would never reach qmail-pop3d (tests/pop3/test_differential_pop3.py).
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(LOGIN)
        proc.stdin.flush()
        head = b"".join(proc.stdout.readline() for _ in range(3))
        rest, _ = proc.communicate(b"LIST\r\nRETR 2\r\nQUIT\r\n", timeout=60)
    assert proc.returncode == 1
    out = head + rest
    assert re.fullmatch(rb"\+OK <\d+\.\d+@pop\.example\.org>", out.split(b"\r\n", 1)[0])
    assert out.split(b"\r\n", 1)[1] == (
        b"+OK \r\n+OK \r\n+OK \r\n1 21\r\n2 21\r\n.\r\n"
        b"+OK \r\nSubject: two\r\n\r\nsecond\r\n\r\n.\r\n+OK \r\n"
    )
    assert os.listdir(alice / "Maildir" / "new") == []
    bad = subprocess.run(
        argv, input=b"USER alice\r\nPASS x\r\n", capture_output=True, timeout=60, check=False
    )
    assert bad.stdout.endswith(b"+OK \r\n-ERR authorization failed\r\n")


def test_idle_client_reads_as_end_of_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """timeoutread(1200, ...): on a real descriptor, silence ends the session."""
    from server.pop3 import stream

    monkeypatch.setattr(stream, "IDLE_TIMEOUT", 0.0)  # no real waiting
    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as reader, open(write_fd, "wb", buffering=0) as writer:
        writer.write(b"STAT\r\nNO")
        assert stream.read_line(reader, exact=True) == b"STAT\r\n"
        assert stream.read_line(reader, exact=True) is None  # "NO" and then silence


def test_mail_arriving_mid_session_is_kept_for_later(world: tuple[Path, Path]) -> None:
    """The listing is made at login; QUIT touches only what it listed."""
    home, alice = world
    runtime, _ = virtual_runtime(start=NOW, first_pid=777)
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())

    class Arrival(PacedInput):
        def readline(self, size: int | None = -1) -> bytes:
            line = super().readline(size)
            if line.startswith(b"STAT"):
                deliver(alice / "Maildir", "new", "1700000200.1.h", b"late\n", NOW - 10)
            return line

    out = io.BytesIO()
    client = LOGIN + b"STAT\r\nSTAT\r\nDELE 1\r\nDELE 2\r\nDELE 3\r\nQUIT\r\n"
    run("qmail-popup", list(ARGV), {}, Arrival(client), out, ctx)
    assert out.getvalue().endswith(
        b"+OK 2 42\r\n+OK 2 42\r\n+OK \r\n+OK \r\n-ERR not that many messages\r\n+OK \r\n"
    )
    assert os.listdir(alice / "Maildir" / "new") == ["1700000200.1.h"]
    assert os.listdir(alice / "Maildir" / "cur") == []
