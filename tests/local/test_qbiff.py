"""qbiff: the announcement, utmp records, the biff-y and owner checks, and
qbiff run by qmail-local from a ``.qmail``. The expected bytes are what
netqmail-1.06's qbiff wrote for the same utmp file and message
(tests/local/test_qprogs_reference.py runs it again when it is installed)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.local import qbiff, utmp
from server.local.utmp import Utmp
from server.programs import ProgramContext
from server.runtime import Runtime

from .conftest import make_user_home

MESSAGE = (
    b"Subject: hi \x01there\nFrom: x\n\nbody \xffline\n"
    b"second line of the body which is long enough to hit the cap of seventy-eight\n"
)
#: netqmail-1.06's qbiff: LOCAL=joe-x SENDER=a@b.org, MESSAGE.
WOOF = (
    b"\r\n\a*** TO <joe-x> FROM <a@b.org>\r\n"
    b"    hi /there//body /line/second line of the body which is long enough to hit \r\n"
)
ENV = {"USER": "joe", "SENDER": "a@b.org", "LOCAL": "joe-x"}


def test_announcement() -> None:
    assert qbiff.announcement(b"joe-x", b"a@b.org", MESSAGE) == WOOF


def test_announcement_escapes_the_addresses_with_underscores() -> None:
    woof = qbiff.announcement(b"j\too", b"\xe9@b", b"")
    assert woof == b"\r\n\a*** TO <j_oo> FROM <_@b>\r\n    \r\n"


@given(st.binary(max_size=300), st.binary(max_size=40), st.binary(max_size=40))
def test_announcement_is_two_printable_lines(message: bytes, local: bytes, sender: bytes) -> None:
    woof = qbiff.announcement(local, sender, message)
    head, first, second, tail = woof.split(b"\r\n")
    assert head == b"" and tail == b"" and first.startswith(b"\a*** TO <")
    assert all(32 <= b <= 126 for b in first[1:] + second)
    assert second.startswith(b"    ") and len(second) <= qbiff.TEXT_MAX


def test_utmp_record_layout() -> None:
    data = utmp.format(Utmp(user=b"joe", line=b"pts/3", pid=77, tv_sec=5))
    assert len(data) == 384
    assert data[8:13] == b"pts/3" and data[44:47] == b"joe"
    (record,) = utmp.parse(data + b"short tail")
    assert (record.user, record.line) == (b"joe".ljust(32, b"\0"), b"pts/3".ljust(32, b"\0"))
    assert (record.pid, record.tv_sec, record.host) == (77, 5, bytes(256))


records = st.builds(
    Utmp,
    user=st.binary(max_size=32).map(lambda b: b.ljust(32, b"\0")),
    line=st.binary(max_size=32).map(lambda b: b.ljust(32, b"\0")),
    type=st.integers(-(2**15), 2**15 - 1),
    pid=st.integers(-(2**31), 2**31 - 1),
    id=st.binary(min_size=4, max_size=4),
    host=st.binary(min_size=256, max_size=256),
    session=st.integers(-(2**31), 2**31 - 1),
    tv_sec=st.integers(-(2**31), 2**31 - 1),
    tv_usec=st.integers(-(2**31), 2**31 - 1),
)


@given(st.lists(records, max_size=5), st.binary(max_size=383))
def test_utmp_round_trip(items: list[Utmp], tail: bytes) -> None:
    data = b"".join(utmp.format(r) for r in items)
    assert utmp.parse(data + tail) == items


@given(st.binary(max_size=2000))
def test_utmp_parse_takes_any_bytes(data: bytes) -> None:
    assert len(utmp.parse(data)) == len(data) // 384


def test_terminals_qbiff_would_try() -> None:
    recs = [
        Utmp(user=b"joe", line=b"tty1"),
        Utmp(user=b"joe", line=b"pts/3", type=8),  # any ut_type
        Utmp(user=b"joe", line=b"tty.x"),
        Utmp(user=b"joe", line=b"/dev/tty2"),
        Utmp(user=b"joe", line=b""),
        Utmp(user=b"joey", line=b"tty4"),
        Utmp(user=b"jo", line=b"tty5"),
    ]
    assert qbiff.terminals(utmp.parse(b"".join(map(utmp.format, recs))), b"joe") == [
        b"tty1",
        b"pts/3",
    ]


def make_world(base: Path, user: str = "joe") -> tuple[Path, Path]:
    """A utmp file and a /dev stand-in: tty1 (biff y), pts/3 (biff y, not in
    a login of joe's), ttyn (biff n), ttymissing (absent)."""
    dev = base / "dev"
    (dev / "pts").mkdir(parents=True)
    for name, mode in (("tty1", 0o700), ("pts/3", 0o700), ("ttyn", 0o600)):
        (dev / name).touch()
        os.chmod(dev / name, mode)
    recs = [
        Utmp(user=user.encode(), line=b"tty1"),
        Utmp(user=b"other", line=b"pts/3"),
        Utmp(user=user.encode(), line=b"ttyn"),
        Utmp(user=user.encode(), line=b"ttymissing"),
    ]
    path = base / "utmp"
    path.write_bytes(b"".join(map(utmp.format, recs)))
    return path, dev


def test_writes_to_biff_y_terminals_only(ctx: ProgramContext, rt: Runtime, tmp_path: Path) -> None:
    rt.uid = os.getuid()
    utmp_path, dev = make_world(tmp_path)
    env = {**ENV, "QMAILSIM_UTMP": str(utmp_path), "QMAILSIM_DEV": str(dev)}
    assert qbiff.main(["qbiff"], env, io.BytesIO(MESSAGE), io.BytesIO(), ctx) == 0
    assert (dev / "tty1").read_bytes() == WOOF
    assert (dev / "ttyn").read_bytes() == b"" and (dev / "pts/3").read_bytes() == b""
    # open_append() creates a missing terminal, 0600: never written to.
    assert (dev / "ttymissing").stat().st_mode & 0o777 == 0o600


def test_not_the_owner(ctx: ProgramContext, rt: Runtime, tmp_path: Path) -> None:
    rt.uid = os.getuid() + 1
    utmp_path, dev = make_world(tmp_path)
    env = {**ENV, "QMAILSIM_UTMP": str(utmp_path), "QMAILSIM_DEV": str(dev)}
    assert qbiff.main(["qbiff"], env, io.BytesIO(MESSAGE), io.BytesIO(), ctx) == 0
    assert (dev / "tty1").read_bytes() == b""


@pytest.mark.parametrize(
    "drop", ["USER", "SENDER", "LOCAL", "QMAILSIM_UTMP", "QMAILSIM_DEV", "long user"]
)
def test_quietly_does_nothing(ctx: ProgramContext, rt: Runtime, tmp_path: Path, drop: str) -> None:
    rt.uid = os.getuid()
    utmp_path, dev = make_world(tmp_path, user="u" * 33 if drop == "long user" else "joe")
    env = {**ENV, "QMAILSIM_UTMP": str(utmp_path), "QMAILSIM_DEV": str(dev)}
    if drop == "long user":
        env["USER"] = "u" * 33
    elif drop == "QMAILSIM_UTMP":
        env[drop] = str(tmp_path / "no-utmp")
    elif drop == "QMAILSIM_DEV":
        env[drop] = str(tmp_path / "no-dev")
    else:
        del env[drop]
    assert qbiff.main(["qbiff"], env, io.BytesIO(MESSAGE), io.BytesIO(), ctx) == 0
    assert ctx.stderr.getvalue() == b""  # type: ignore[attr-defined]
    assert (dev / "tty1").read_bytes() == b""


def test_run_by_qmail_local_from_a_dotqmail(qhome: Path, tmp_path: Path) -> None:
    """``|qbiff`` in a .qmail: qmail-local's environment (LOCAL is the
    recipient's local part) reaches qbiff, the mailbox line still delivers."""
    utmp_path, dev = make_world(tmp_path, user="joe")
    home = make_user_home(tmp_path, "joe", {"-list": "./Maildir/\n|qbiff\n"})
    msg = tmp_path / "message"
    msg.write_bytes(b"Subject: news\n\nhello\n")
    argv = ["joe", str(home), "joe-list", "-", "list", "ex.org", "a@x.org", "./Maildir/"]
    with open(msg, "rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "server", "--home", str(qhome), "qmail-local", *argv],
            stdin=stdin,
            capture_output=True,
            env={
                "PATH": f"{qhome}/bin:/usr/bin:/bin",
                "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                "QMAILSIM_UTMP": str(utmp_path),
                "QMAILSIM_DEV": str(dev),
            },
            timeout=60,
            check=False,
        )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"did 1+0+1\n", b"")
    assert (dev / "tty1").read_bytes() == (
        b"\r\n\a*** TO <joe-list> FROM <a@x.org>\r\n    news//hello/\r\n"
    )
    assert len(os.listdir(home / "Maildir" / "new")) == 1
