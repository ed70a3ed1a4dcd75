"""maildir2mbox (maildir2mbox.c): Maildir messages appended to an mbox."""

from __future__ import annotations

import io
import mailbox
import os
from pathlib import Path

from server.local import maildir2mbox
from server.local.maildir2mbox import convert, from_line
from server.programs import ProgramContext
from server.runtime import Runtime

from .conftest import make_user_home


def test_from_line() -> None:
    t = 1_700_000_000
    assert from_line(b"Return-Path: <a b@c>\n", t) == b"From a-b@c Tue Nov 14 22:13:20 2023\n"
    assert from_line(b"Return-Path: <>\n", t).startswith(b"From MAILER-DAEMON Tue")
    assert from_line(b"Subject: x\n", t).startswith(b"From XXX Tue")
    assert from_line(None, t).startswith(b"From XXX Tue")


def test_convert_quotes_and_drops_an_unterminated_last_line() -> None:
    got = convert(b"Return-Path: <>\nFrom x\n\n>From y\nlast", 0)
    assert got == (
        b"From MAILER-DAEMON Thu Jan 01 00:00:00 1970\nReturn-Path: <>\n>From x\n\n>>From y\n\n"
    )


def test_moves_messages_into_the_mbox(ctx: ProgramContext, rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    new = home / "Maildir" / "new"
    for n, sender in enumerate(("a@x", "b@y")):
        path = new / f"msg{n}"
        path.write_bytes(f"Return-Path: <{sender}>\nSubject: m{n}\n\nbody {n}\n".encode())
        os.utime(path, (rt.now() - 100 + n, rt.now() - 100 + n))
    (home / "Mailbox").write_bytes(b"")
    ctx.cwd = home
    env = {"MAILDIR": "Maildir", "MAIL": "../Mailbox", "MAILTMP": "../Mailbox.tmp"}
    assert maildir2mbox.main(["maildir2mbox"], env, io.BytesIO(), io.BytesIO(), ctx) == 0
    assert os.listdir(new) == []
    box = mailbox.mbox(home / "Mailbox", create=False)
    try:
        msgs = list(box)
        assert [m["Subject"] for m in msgs] == ["m0", "m1"]
        assert msgs[0].get_from().startswith("a@x ")
    finally:
        box.close()


def test_nothing_to_do_and_missing_env(ctx: ProgramContext, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    env = {"MAILDIR": str(home / "Maildir"), "MAIL": "m", "MAILTMP": "t"}
    assert maildir2mbox.main(["maildir2mbox"], env, io.BytesIO(), io.BytesIO(), ctx) == 0
    assert not (home / "Maildir" / "m").exists()
    assert maildir2mbox.main(["maildir2mbox"], {}, io.BytesIO(), io.BytesIO(), ctx) == 111
    assert ctx.stderr.getvalue() == b"maildir2mbox: fatal: MAIL not set\n"  # type: ignore[attr-defined]
