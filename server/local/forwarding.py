"""Forwarding (``&address`` and bare address lines) through qmail-queue.

qmail-local's mailforward() queues one new message for all forward lines of
a ``.qmail`` file: the ``Delivered-To:`` line followed by the message, from
the envelope sender ``NEWSENDER`` (see :func:`new_sender`), to the addresses
as written. qmail-queue's answer decides: "" is success, ``Z...`` defers
and ``D...`` bounces with "Unable to forward message: <text>.".

The queue is reached through an injectable :data:`Forwarder`; the default
calls ``server.queue.client.queue_message``. The invoker (for
qmail-queue's ``Received:`` line) is ``alias`` when the alias user delivers,
else the delivering user's uid, as qmail-queue derives it from its uid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from server.programs import ProgramContext

Invoker = Literal["network", "bounce", "alias"] | int


@dataclass(frozen=True)
class ForwardResult:
    error: str  # "" on success, else qmail_close()'s text starting with Z or D
    qp: int


Forwarder = Callable[[Mapping[str, str], bytes, str, Sequence[str], Invoker], ForwardResult]


def new_sender(sender: str, local: str, host: str, owner: bool, owner_default: bool) -> str:
    """``NEWSENDER``: the sender forwards use (qmail-local.c, the ``ueo`` string).

    A bounce (``<>``) or ``#@[]`` stays as it is. Otherwise, when the
    ``.qmail`` file has a ``-owner`` sibling, bounces go to its owner:
    ``local-owner@host``, or the VERP form ``local-owner-@host-@[]`` when a
    ``-owner-default`` sibling exists too.
    """
    if sender in ("", "#@[]") or not owner:
        return sender
    if owner_default:
        return f"{local}-owner-@{host}-@[]"
    return f"{local}-owner@{host}"


def queue_forwarder(ctx: ProgramContext) -> Forwarder:
    """The default: qmail-queue as server.queue.client runs it."""

    def forward(
        env: Mapping[str, str],
        message: bytes,
        sender: str,
        recipients: Sequence[str],
        invoker: Invoker,
    ) -> ForwardResult:
        from server.queue.client import queue_message

        result = queue_message(ctx, env, message, sender, recipients, invoker=invoker)
        return ForwardResult(error=result.error, qp=result.qp)

    return forward
