"""qreceipt and qsmhook, in process. The expected bytes are what netqmail-1.06's
programs gave for the same input (tests/local/test_qprogs_reference.py runs
them again when they are installed)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.local import qreceipt, qsmhook
from server.local.qreceipt import Stop, requests_notice
from server.programs import ProgramContext
from server.qdir import qfn
from server.queue.core import message_ids, read_envelope

NOTICE_FIELD = (
    b'Notice-Requested-Upon-Delivery-To: "Joe Q" <joe@ex.org>, other@ex.org,\n'
    b'  (comment) grp: "j o"@ex.org;\n'
)
MESSAGE = b"Message-ID: <123@x.org>\n" + NOTICE_FIELD + b"Subject: x\n\nbody\n"
NOTICE = (
    b"From: DELIVERY NOTICE SYSTEM <a@b.org>\n"
    b"To: <a@b.org>\n"
    b"Subject: success notice\n"
    b"\n"
    b"Hi! This is the qreceipt program. Your message was delivered to the\n"
    b"following address: joe@ex.org. Thanks for asking.\n"
    b"Your Message-ID: <123@x.org>\n"
)


def _receipt(
    ctx: ProgramContext, argv: list[str], env: dict[str, str], message: bytes = MESSAGE
) -> tuple[int, bytes]:
    code = qreceipt.main(["qreceipt", *argv], env, io.BytesIO(message), io.BytesIO(), ctx)
    return code, ctx.stderr.getvalue()  # type: ignore[attr-defined]


def test_qreceipt_queues_the_notice(ctx: ProgramContext) -> None:
    assert _receipt(ctx, ["joe@ex.org"], {"SENDER": "a@b.org"}) == (0, b"")
    queue = ctx.home / "queue"
    (msgid,) = message_ids(queue)
    assert read_envelope(qfn(queue, "todo", msgid)) == ("", ["a@b.org"])
    received, data = qfn(queue, "mess", msgid).read_bytes().split(b"\n", 1)
    assert data == NOTICE
    assert received.startswith(b"Received: (qmail ") and b"invoked by uid 1000" in received


@pytest.mark.parametrize(
    ("target", "sender", "field"),
    [
        ("j o@ex.org", "a@b.org", NOTICE_FIELD),  # "j o"@ex.org, unquoted, in a group
        ("other@ex.org", "a@b.org", NOTICE_FIELD),
        ("joe@ex.org", "a@b.org", b"notice-requested-upon-delivery-to : joe@ex.org\n"),
    ],
)
def test_qreceipt_finds_the_address(
    ctx: ProgramContext, target: str, sender: str, field: bytes
) -> None:
    assert _receipt(ctx, [target], {"SENDER": sender}, field + b"\n") == (0, b"")
    assert len(message_ids(ctx.home / "queue")) == 1


def test_qreceipt_quotes_the_sender_and_copies_the_whole_message_id(
    ctx: ProgramContext,
) -> None:
    message = b"Notice-Requested-Upon-Delivery-To: joe@ex.org\nMessage-ID: a\n  b\n"
    assert _receipt(ctx, ["joe@ex.org"], {"SENDER": "a b@c"}, message) == (0, b"")
    queue = ctx.home / "queue"
    (msgid,) = message_ids(queue)
    data = qfn(queue, "mess", msgid).read_bytes().split(b"\n", 1)[1]
    assert data.startswith(b'From: DELIVERY NOTICE SYSTEM <"a b"@c>\nTo: <"a b"@c>\n')
    assert data.endswith(b"Thanks for asking.\nYour Message-ID: a\n  b\n")


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["joe@ex.org"], {"SENDER": ""}, MESSAGE),
        (["joe@ex.org"], {"SENDER": "#@[]"}, MESSAGE),
        (["joe@ex.org"], {"SENDER": "a@b"}, b"Notice-Requested-Upon-Delivery-To: bob@ex.org\n\n"),
        (["Joe@ex.org"], {"SENDER": "a@b"}, MESSAGE),  # compared byte for byte
        (
            ["joe@ex.org"],
            {"SENDER": "a@b"},
            b"Subject: x\n\nNotice-Requested-Upon-Delivery-To: joe@ex.org\n",
        ),
        # token822 stops at the unclosed "<" / lone ")" without an error here
        (["joe@ex.org"], {"SENDER": "a@b"}, b"Notice-Requested-Upon-Delivery-To: <joe@ex.org\n\n"),
        (["joe@ex.org"], {"SENDER": "a@b"}, b"Notice-Requested-Upon-Delivery-To: joe@ex.org)\n\n"),
    ],
)
def test_qreceipt_sends_nothing(
    ctx: ProgramContext, argv: list[str], env: dict[str, str], message: bytes
) -> None:
    assert _receipt(ctx, argv, env, message) == (0, b"")
    assert message_ids(ctx.home / "queue") == []


@pytest.mark.parametrize(("argv", "env"), [([], {"SENDER": "a@b"}), (["joe@ex.org"], {})])
def test_qreceipt_usage(ctx: ProgramContext, argv: list[str], env: dict[str, str]) -> None:
    assert _receipt(ctx, argv, env) == (100, b"qreceipt: usage: qreceipt deliveryaddress\n")


@pytest.mark.parametrize(
    ("code", "exit", "err"),
    [
        ("31", 100, b"qreceipt: fatal: permanent qmail-queue error\n"),
        ("71", 111, b"qreceipt: fatal: temporary qmail-queue error\n"),
    ],
)
def test_qreceipt_queue_errors(
    ctx: ProgramContext, tmp_path: Path, code: str, exit: int, err: bytes
) -> None:
    fake = tmp_path / "fakeq"
    fake.write_text(f"#!/bin/sh\ncat >/dev/null\nexit {code}\n")
    fake.chmod(0o755)
    env = {"SENDER": "a@b", "QMAILQUEUE": str(fake), "PATH": "/usr/bin:/bin"}
    assert _receipt(ctx, ["joe@ex.org"], env) == (exit, err)


@given(st.binary(max_size=200))
def test_notice_field_parses_or_stops_with_100(value: bytes) -> None:
    field = b"Notice-Requested-Upon-Delivery-To: " + value + b"\n"
    try:
        assert requests_notice(field, b"joe@ex.org") in (True, False)
    except Stop as stop:
        assert stop.code == 100
        assert stop.text == b"qreceipt: fatal: unable to parse this: " + field


QENV = {
    "DTLINE": "Delivered-To: joe-list@ex.org\n",
    "RPLINE": "Return-Path: <a@b>\n",
    "UFLINE": "From a@b Thu Jan  1 00:00:00 1970\n",
    "LOCAL": "Joe-list",
    "HOST": "ex.org",
    "SENDER": "a@b",
    "PATH": "/usr/bin:/bin",
}


def _hook(
    ctx: ProgramContext, argv: list[str], env: dict[str, str] = QENV
) -> tuple[int, bytes, bytes]:
    out = io.BytesIO()
    code = qsmhook.main(["qsmhook", *argv], env, io.BytesIO(b"Subject: x\n\nbody\n"), out, ctx)
    return code, out.getvalue(), ctx.stderr.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("argv", "result"),
    [
        (["cat"], (0, b"From a@b Thu Jan  1 00:00:00 1970\nSubject: x\n\nbody\n", b"")),
        (["-n", "cat"], (0, b"Subject: x\n\nbody\n", b"")),
        (
            ["-nPl", "cat"],
            (0, b"Return-Path: <a@b>\nDelivered-To: joe-list@ex.org\nSubject: x\n\nbody\n", b""),
        ),
        (
            [
                "-lP",
                "-x",
                "joe-",
                "-x",
                "LI",
                "-D",
                "-F",
                "-M",
                "-m",
                "-s",
                "echo",
                "%g",
                "%h",
                "%u",
                "%%",
                "%z",
                "x%",
                "a%%b",
            ],
            (0, b"a@b ex.org st %  x a%b\n", b""),
        ),
        (["-x", "JOE-", "echo", "%u"], (0, b"list\n", b"")),
        (["-z", "cat"], (100, b"", b"qsmhook: illegal option -- z\n")),
        (["-x"], (100, b"", b"qsmhook: option requires an argument -- x\n")),
        ([], (100, b"", b"qsmhook: fatal: incorrect usage\n")),
        (["-n"], (100, b"", b"qsmhook: fatal: incorrect usage\n")),
        (["/no/such"], (100, b"", b"qsmhook: fatal: command not found\n")),
        (["--", "-n", "cat"], (100, b"", b"qsmhook: fatal: command not found\n")),
        (["sh", "-c", "exit 7"], (7, b"", b"")),
        (["sh", "-c", "kill -9 $$"], (111, b"", b"qsmhook: fatal: temporary problem\n")),
    ],
)
def test_qsmhook(ctx: ProgramContext, argv: list[str], result: tuple[int, bytes, bytes]) -> None:
    assert _hook(ctx, argv) == result


@pytest.mark.parametrize("unset", ["DTLINE", "RPLINE", "UFLINE", "LOCAL", "HOST", "SENDER"])
def test_qsmhook_needs_its_environment(ctx: ProgramContext, unset: str) -> None:
    env = {k: v for k, v in QENV.items() if k != unset}
    assert _hook(ctx, ["cat"], env) == (100, b"", b"qsmhook: fatal: incorrect usage\n")


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
def test_substitute_without_percent_is_identity(arg: str) -> None:
    plain = arg.replace("%", "")
    assert qsmhook.substitute(plain, "S", "H", "U") == plain


@given(st.lists(st.sampled_from(["%%", "%g", "%h", "%u", "%q", "a"]), max_size=20))
def test_substitute_pieces(pieces: list[str]) -> None:
    """Each escape by its value, an unknown one and a final lone "%" by nothing."""
    values = {"%%": "%", "%g": "S", "%h": "H", "%u": "U", "%q": "", "a": "a"}
    want = "".join(values[p] for p in pieces)
    assert qsmhook.substitute("".join(pieces) + "%", "S", "H", "U") == want


@pytest.mark.parametrize("value", [b"(x", b'"x', b"a, b:c", b"x>", b"[a"])
def test_qreceipt_unparsable_field_stops_before_any_notice(
    ctx: ProgramContext, value: bytes
) -> None:
    field = b"Notice-Requested-Upon-Delivery-To: " + value + b"\n"
    message = b"Notice-Requested-Upon-Delivery-To: joe@ex.org\n" + field + b"\n"
    assert _receipt(ctx, ["joe@ex.org"], {"SENDER": "a@b"}, message) == (
        100,
        b"qreceipt: fatal: unable to parse this: " + field,
    )
    assert message_ids(ctx.home / "queue") == []
