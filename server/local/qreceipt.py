"""qreceipt youraddress: answer delivery notice requests (qreceipt.c, qreceipt(1)).

When the message's header has ``youraddress`` among the addresses of a
``Notice-Requested-Upon-Delivery-To`` field (compared byte for byte after
token822 unquoting, as rwnotice() does), qreceipt queues a success notice
from ``<>`` to the envelope sender ``$SENDER`` through qmail-queue (not
qmail-inject: the notice has exactly these lines, nothing added)::

    From: DELIVERY NOTICE SYSTEM <SENDER quoted>
    To: <SENDER quoted>
    Subject: success notice

    Hi! This is the qreceipt program. Your message was delivered to the
    following address: youraddress. Thanks for asking.
    Your Message-ID: ... (the message's Message-ID field, when it has one)

No notice for a bounce (``$SENDER`` empty or ``#@[]``). It always exits 0
unless something fails: 100 for a usage error (no argument or no
``$SENDER``), an unparsable notice field or a permanent qmail-queue error,
111 for a temporary one. It decides at the end of the header, so a field
that cannot be parsed stops it before any notice is sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import BinaryIO

from server.inject import token822
from server.inject.headers import H, known, split
from server.local.tools import invoker_for
from server.programs import ProgramContext
from server.quote import quote2

FATAL = "qreceipt: fatal: "
USAGE = "qreceipt: usage: qreceipt deliveryaddress\n"
#: finishheader(): returnpath "#@[]" is qmail's double-bounce sender.
NO_NOTICE_SENDERS = ("", "#@[]")


class Stop(Exception):
    """_exit(code) after writing ``text`` to stderr."""

    def __init__(self, code: int, text: bytes = b"") -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


def requests_notice(field: bytes, target: bytes) -> bool:
    """Whether ``target`` is among the field's addresses; Stop(100) when unparsable."""
    found = False

    def rwnotice(addr: list[token822.Token]) -> list[token822.Token]:
        nonlocal found
        if token822.unquote(addr) == target:
            found = True
        return addr

    try:
        token822.addrlist(token822.parse(field), rwnotice)
    except token822.ParseError as exc:
        raise Stop(100, b"qreceipt: fatal: unable to parse this: " + field) from exc
    return found


def notice(returnpath: str, target: str, messageid: bytes | None) -> bytes:
    """The notice's bytes, as finishheader() writes them."""
    quoted = quote2(returnpath).encode("latin-1", "replace")
    text = (
        b"From: DELIVERY NOTICE SYSTEM <" + quoted + b">\n"
        b"To: <" + quoted + b">\n"
        b"Subject: success notice\n"
        b"\n"
        b"Hi! This is the qreceipt program. Your message was delivered to the\n"
        b"following address: " + os.fsencode(target) + b". Thanks for asking.\n"
    )
    if messageid is not None:
        text += b"Your " + messageid
    return text


def run(argv: list[str], env: Mapping[str, str], stdin: BinaryIO, ctx: ProgramContext) -> None:
    from server.queue.client import queue_message

    if len(argv) < 2 or "SENDER" not in env:
        raise Stop(100, USAGE.encode())
    target, returnpath = argv[1], env["SENDER"]
    try:
        header = split(stdin.read()).fields
    except OSError as exc:
        raise Stop(111, b"qreceipt: fatal: read error\n") from exc
    messageid, wanted = None, False
    for field in header:
        kind = known(field)
        if kind is H.MESSAGEID:
            messageid = field
        elif kind is H.NOTICEREQUESTEDUPONDELIVERYTO:
            wanted = requests_notice(field, os.fsencode(target)) or wanted
    if not wanted or returnpath in NO_NOTICE_SENDERS:
        return
    data = notice(returnpath, target, messageid)
    try:
        result = queue_message(ctx, env, data, "", [returnpath], invoker=invoker_for(env, ctx))
    except OSError as exc:
        raise Stop(111, b"qreceipt: fatal: unable to fork\n") from exc
    if result.error.startswith("D"):
        raise Stop(100, b"qreceipt: fatal: permanent qmail-queue error\n")
    if result.error:
        raise Stop(111, b"qreceipt: fatal: temporary qmail-queue error\n")


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    try:
        run(argv, env, stdin, ctx)
    except Stop as stop:
        ctx.stderr.write(stop.text)
        ctx.stderr.flush()
        return stop.code
    return 0
