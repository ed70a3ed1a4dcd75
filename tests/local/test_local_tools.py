"""bouncesaying, except, condredirect, forward, preline: the .qmail helpers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from server.local import bouncesaying, condredirect, except_, forward, preline
from server.local.lspawn import LocalChannel
from server.programs import ProgramContext
from server.qdir import qfn
from server.queue.core import message_ids, read_envelope
from server.spawn import DeliveryJob

from .conftest import make_user_home

ENV = {
    "PATH": "/usr/bin:/bin",
    "SENDER": "a@far.example",
    "NEWSENDER": "a@far.example",
    "DTLINE": "Delivered-To: joe@example.org\n",
    "RPLINE": "Return-Path: <a@far.example>\n",
    "UFLINE": "From a@far.example Tue Nov 14 22:13:20 2023\n",
    "USER": "joe",
}
MESSAGE = b"Subject: t\n\nbody\n"


def run(mod: object, argv: list[str], ctx: ProgramContext) -> tuple[int, bytes, bytes]:
    out = io.BytesIO()
    start = len(ctx.stderr.getvalue())  # type: ignore[attr-defined]
    code = mod.main(argv, ENV, io.BytesIO(MESSAGE), out, ctx)  # type: ignore[attr-defined]
    return code, out.getvalue(), ctx.stderr.getvalue()[start:]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("argv", "code", "err"),
    [
        (["bouncesaying", "go away"], 100, b"go away\n"),
        (["bouncesaying", "go away", "true"], 100, b"go away\n"),
        (["bouncesaying", "go away", "false"], 0, b""),
        (
            ["bouncesaying", "x", "sh", "-c", "exit 111"],
            111,
            b"bouncesaying: fatal: temporary child error\n",
        ),
        (
            ["bouncesaying", "x", "sh", "-c", "kill -9 $$"],
            111,
            b"bouncesaying: fatal: child crashed\n",
        ),
        (
            ["bouncesaying"],
            100,
            b"bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]\n",
        ),
    ],
)
def test_bouncesaying(ctx: ProgramContext, argv: list[str], code: int, err: bytes) -> None:
    assert run(bouncesaying, argv, ctx)[0::2] == (code, err)


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["except", "true"], 100), (["except", "false"], 0), (["except", "/no/such"], 0)],
)
def test_except(ctx: ProgramContext, argv: list[str], code: int) -> None:
    assert run(except_, argv, ctx)[0] == code


def test_preline_adds_the_three_lines(ctx: ProgramContext) -> None:
    code, out, _ = run(preline, ["preline", "cat"], ctx)
    assert code == 0
    assert out == (ENV["UFLINE"] + ENV["RPLINE"] + ENV["DTLINE"]).encode() + MESSAGE
    code, out, _ = run(preline, ["preline", "-fr", "cat"], ctx)
    assert out == ENV["DTLINE"].encode() + MESSAGE


def test_preline_cannot_run(ctx: ProgramContext) -> None:
    code, _, err = run(preline, ["preline", "/no/such/prog"], ctx)
    assert (code, err) == (
        100,
        b"preline: fatal: unable to run /no/such/prog: file does not exist\n",
    )


def _queued(home: Path) -> tuple[tuple[str, list[str]], bytes]:
    queue = home / "queue"
    (msgid,) = message_ids(queue)
    return read_envelope(qfn(queue, "todo", msgid)), qfn(queue, "mess", msgid).read_bytes()


def test_forward_queues_with_dtline(ctx: ProgramContext) -> None:
    code, _, err = run(forward, ["forward", "b@x.example", "c@y.example"], ctx)
    assert code == 0 and err.startswith(b"forward: qp ")
    envelope, data = _queued(ctx.home)
    assert envelope == ("a@far.example", ["b@x.example", "c@y.example"])
    assert data.split(b"\n", 1)[1] == ENV["DTLINE"].encode() + MESSAGE
    assert b"invoked by uid 1000" in data.split(b"\n", 1)[0]


def test_condredirect(ctx: ProgramContext) -> None:
    assert run(condredirect, ["condredirect", "b@x.example", "false"], ctx)[0] == 0
    assert message_ids(ctx.home / "queue") == []
    code, _, err = run(condredirect, ["condredirect", "b@x.example", "true"], ctx)
    assert code == 99 and err.startswith(b"condredirect: qp ")
    assert _queued(ctx.home)[0] == ("a@far.example", ["b@x.example"])


@pytest.mark.parametrize(
    ("mod", "argv", "unset", "err"),
    [
        (forward, ["forward", "b@x.example"], "NEWSENDER", b"forward: fatal: NEWSENDER not set\n"),
        (forward, ["forward", "b@x.example"], "DTLINE", b"forward: fatal: DTLINE not set\n"),
        (
            condredirect,
            ["condredirect", "b@x.example", "true"],
            "SENDER",
            b"condredirect: fatal: SENDER not set\n",
        ),
        (
            condredirect,
            ["condredirect", "b@x.example", "true"],
            "DTLINE",
            b"condredirect: fatal: DTLINE not set\n",
        ),
    ],
)
def test_forwarders_need_their_environment(
    ctx: ProgramContext, mod: object, argv: list[str], unset: str, err: bytes
) -> None:
    """forward.c, condredirect.c: strerr_die2x(100,FATAL,"... not set")."""
    env = {k: v for k, v in ENV.items() if k != unset}
    with io.BytesIO() as out, io.BytesIO(MESSAGE) as stdin:
        code = mod.main(argv, env, stdin, out, ctx)  # type: ignore[attr-defined]
    assert (code, ctx.stderr.getvalue()) == (100, err)  # type: ignore[attr-defined]
    assert message_ids(ctx.home / "queue") == []


def test_bouncesaying_from_a_dotqmail_through_bin(ctx: ProgramContext, tmp_path: Path) -> None:
    """The home's bin/ is on PATH for |commands, as qmail's rc puts it there."""
    home = make_user_home(tmp_path, "joe", {"": '|bouncesaying "This address is closed."\n'})
    uid = ctx.runtime.uid
    (ctx.home / "users" / "assign").write_text(f"=joe:joe:{uid}:{uid}:{home}:::\n.\n")
    from server.local import newu

    newu.build(ctx.home)
    mess = ctx.home / "queue" / "mess" / "0" / "23"
    mess.write_bytes(MESSAGE)
    job = DeliveryJob(msgid=23, message=mess, sender="", recipient="joe@mx.example.org")
    assert LocalChannel(ctx).deliver(job) == b"DThis address is closed.\n"
