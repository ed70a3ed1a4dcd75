"""Local delivery against the real neighbours: qmail-queue's client for forwards."""

from __future__ import annotations

from pathlib import Path

from server.local.lspawn import LocalChannel
from server.programs import ProgramContext
from server.qdir import qfn
from server.queue.core import message_ids, read_envelope
from server.spawn import DeliveryJob


def test_alias_forward_is_queued_with_invoked_by_alias(ctx: ProgramContext) -> None:
    (ctx.home / "alias" / ".qmail-root").write_text("&admin@example.net\n")
    mess = ctx.home / "queue" / "mess" / "0" / "23"
    mess.write_bytes(b"Subject: x\n\nhi\n")
    job = DeliveryJob(
        msgid=23, message=mess, sender="a@far.example", recipient="root@mx.example.org"
    )
    got = LocalChannel(ctx).deliver(job)
    assert got.startswith(b"Kdid 0+1+0\nqp ")
    queue = ctx.home / "queue"
    (msgid,) = [m for m in message_ids(queue) if m != 23]
    sender, recips = read_envelope(qfn(queue, "todo", msgid))
    assert (sender, recips) == ("a@far.example", ["admin@example.net"])
    data = qfn(queue, "mess", msgid).read_bytes()
    first, rest = data.split(b"\n", 1)
    assert b"invoked by alias" in first
    assert rest == b"Delivered-To: root@mx.example.org\nSubject: x\n\nhi\n"


def test_harness_style_assign_user_ext(ctx: ProgramContext, tmp_path: Path) -> None:
    """The two lines the sim target writes per user (= and +name-) route extensions."""
    from server.local import newu

    from .conftest import make_user_home

    home = make_user_home(tmp_path, "carol", {"-news": "./Maildir/\n"})
    uid = ctx.runtime.uid
    (ctx.home / "users" / "assign").write_text(
        f"=carol:carol:{uid}:{uid}:{home}:::\n+carol-:carol:{uid}:{uid}:{home}:-::\n.\n"
    )
    newu.build(ctx.home)
    mess = ctx.home / "queue" / "mess" / "0" / "23"
    mess.write_bytes(b"\n")
    channel = LocalChannel(ctx)
    ok = DeliveryJob(msgid=23, message=mess, sender="", recipient="carol-news@mx.example.org")
    assert channel.deliver(ok) == b"Kdid 1+0+0\n"
    bad = DeliveryJob(msgid=23, message=mess, sender="", recipient="carol-other@mx.example.org")
    assert channel.deliver(bad) == b"DSorry, no mailbox here by that name. (#5.1.1)\n"
