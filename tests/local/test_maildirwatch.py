"""maildirwatch: the summary lines, the loop driven by the virtual clock, and
the program on a terminal (pexpect). The expected bytes are what netqmail-1.06's
maildirwatch printed for the same Maildir."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pexpect
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.inject.headers import skipname
from server.local import maildirwatch
from server.local.maildirwatch import CLEAR, summary
from server.programs import ProgramContext
from server.runtime import Runtime

FIRST = (
    b"Return-Path: <a@x.org>\nDelivered-To: joe@ex.org\n"
    b'From: "A\xe9" <a@x.org>,\n  b@y\nSubject: hello\n  there\nSubject: two\n\n'
    b"body line 1\n\tbody\x01 2\n"
)
#: netqmail-1.06's maildirwatch on FIRST.
FIRST_SUMMARY = (
    b"FROM <a@x.org> TO <joe@ex.org>\n"
    b'\033[1mFrom: "A/" <a@x.org>,/  b@y\033[0m\n'
    b"hello/  there/two//body line 1//body/ 2/\n\n"
)


def test_summary_of_a_full_message() -> None:
    assert summary(FIRST) == FIRST_SUMMARY


def test_summary_without_header_fields() -> None:
    # headerbody(): a first line that is no field starts the body after a "\n".
    assert summary(b"no header here\nmore\n") == b"FROM ? TO <?>\n/no header here/more/\n\n"


def test_empty_fields_leave_the_question_marks() -> None:
    # hfield_skipname() skips the newline, so "i < h->len" fails: no copy.
    assert summary(b"Delivered-To:\nReturn-Path: \n\n") == b"FROM ? TO <?>\n/\n\n"


def test_text_stops_at_158_bytes() -> None:
    out = summary(b"Subject: s\n\n" + b"x" * 300)
    assert out == b"FROM ? TO <?>\ns//" + b"x" * 155 + b"\n\n"


@given(st.binary(max_size=600))
def test_summary_prints_only_printables(message: bytes) -> None:
    out = summary(message)
    assert out.startswith(b"FROM ") and out.endswith(b"\n\n")
    assert all(32 <= b <= 126 or b in b"\n\033" for b in out)


def _maildir(tmp_path: Path, t: float) -> Path:
    maildir = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    _deliver(maildir, "1.a", FIRST, t)
    _deliver(maildir, "cur-only", b"Subject: in cur\n\n", t, sub="cur")
    return maildir


def _deliver(maildir: Path, name: str, data: bytes, t: float, sub: str = "new") -> None:
    path = maildir / sub / name
    path.write_bytes(data)
    os.utime(path, (t, t))


class Enough(Exception):
    pass


def test_loop_sleeps_30_seconds_through_the_runtime(
    ctx: ProgramContext, rt: Runtime, tmp_path: Path
) -> None:
    start = rt.now()
    maildir = _maildir(tmp_path, start - 100)
    naps: list[int] = []

    def sleeper(seconds: float) -> None:
        naps.append(rt.now())
        if len(naps) == 2:
            raise Enough
        rt.clock.advance(seconds)  # type: ignore[attr-defined]
        _deliver(maildir, "2.b", b"Subject: second\n\nhi\n", rt.now() - 1)

    rt.sleeper = sleeper
    out = io.BytesIO()
    with pytest.raises(Enough):
        maildirwatch.main(["maildirwatch"], {"MAILDIR": str(maildir)}, io.BytesIO(), out, ctx)
    assert naps == [start, start + 30]
    second = b"FROM ? TO <?>\nsecond//hi/\n\n"
    assert out.getvalue() == CLEAR + FIRST_SUMMARY + CLEAR + FIRST_SUMMARY + second


def test_without_a_sleeper_the_virtual_clock_moves(rt: Runtime) -> None:
    before = rt.now()
    rt.sleep(30)
    assert rt.now() == before + 30


@pytest.mark.parametrize(
    ("env", "err"),
    [
        ({}, b"maildirwatch: fatal: MAILDIR not set\n"),
        (
            {"MAILDIR": "/nonexistent"},
            b"maildirwatch: fatal: unable to chdir to /nonexistent: file does not exist\n",
        ),
        (
            {"MAILDIR": "."},
            b"maildirwatch: fatal: unable to scan $MAILDIR/new: file does not exist\n",
        ),
    ],
)
def test_fatal_errors(ctx: ProgramContext, tmp_path: Path, env: dict[str, str], err: bytes) -> None:
    ctx.cwd = tmp_path
    out = io.BytesIO()
    assert maildirwatch.main(["maildirwatch"], env, io.BytesIO(), out, ctx) == 111
    assert ctx.stderr.getvalue() == err  # type: ignore[attr-defined]
    assert out.getvalue() == b""


def test_on_a_terminal(qhome: Path, tmp_path: Path) -> None:
    # The real program on a pty: the first screen comes at once; then it
    # sleeps its 30 real seconds, which the test does not wait for.
    maildir = _maildir(tmp_path, 1_600_000_000)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "server", "--home", str(qhome), "maildirwatch"],
        env={**os.environ, "MAILDIR": str(maildir)},
        timeout=60,
    )
    try:
        child.expect_exact(b"\033[;H\033[;J")
        child.expect_exact(b"FROM <a@x.org> TO <joe@ex.org>\r\n")
        child.expect_exact(b"hello/  there/two//body line 1//body/ 2/\r\n\r\n")
    finally:
        child.terminate(force=True)


@given(st.binary(max_size=60))
def test_skipname_stops_after_the_colon_and_its_blanks(field: bytes) -> None:
    i = skipname(field)
    colon = field.find(b":")
    if colon < 0:
        assert i == len(field)
        return
    assert colon < i <= len(field)
    assert all(b in b" \t\r\n" for b in field[colon + 1 : i])
    assert i == len(field) or field[i] not in b" \t\r\n"
