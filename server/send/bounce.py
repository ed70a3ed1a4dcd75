"""Bounce texts (qmail-send.c addbounce, injectbounce, stripvdomprepend; quote.c).

A failed recipient appends one entry to ``queue/bounce/<id>``::

    <recipient>:
    report text, ending in a newline
    <blank line>

where a blank line inside the report is turned into a line holding ``/`` so
that entries stay separated by exactly one blank line. When the message is
done, qmail-send wraps the entries in a message (:func:`compose`) and queues
it with qmail-queue: a bounce to the original sender from ``<>``, or — when
the message was itself a bounce (sender ``<>``) — a double bounce from
``#@[]`` to ``doublebounceto@doublebouncehost``. A bounce of a double bounce
(sender ``#@[]``) is a triple bounce, logged and discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.quote import quote, quote2
from server.send.config import SendConfig, fold

DOUBLE_BOUNCE_SENDER = "#@[]"

_INTRO_SINGLE = (
    ".\n"
    "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
    "This is a permanent error; I've given up. Sorry it didn't work out.\n"
    "\n"
)
_INTRO_DOUBLE = (
    ".\nI tried to deliver a bounce message to this address, but the bounce bounced!\n\n"
)
_BELOW_SINGLE = "--- Below this line is a copy of the message.\n\n"
_BELOW_DOUBLE = "--- Below this line is the original bounce.\n\n"
#: what a deferral becomes once a message is older than queuelifetime
DYING_TEXT = b"I'm not going to try again; this message has been in the queue too long.\n"


def strip_vdom_prepend(recip: str, vdoms: dict[str, str]) -> str:
    """Undo virtualdomains' ``prepend-`` so the bounce names the address the sender used."""
    at = recip.rfind("@")
    if at == -1:
        return recip
    domain = recip[at + 1 :]
    for i in range(len(domain) + 1):
        if i not in (0, len(domain)) and domain[i] != ".":
            continue
        prepend = vdoms.get(fold(domain[i:]))
        if prepend is None:
            continue
        if not prepend or not recip.startswith(prepend + "-"):
            break
        return recip[len(prepend) + 1 :]
    return recip


def bounce_entry(recip: str, report: bytes, vdoms: dict[str, str]) -> bytes:
    """addbounce(): the bytes appended to bounce/<id> for one failed recipient."""
    head = "<" + strip_vdom_prepend(recip, vdoms).replace("\n", "_") + ">:\n"
    text = bytearray(head.encode("latin-1") + report)
    if report and not report.endswith(b"\n"):
        text += b"\n"
    # a blank line inside the entry would end it early: make it "/"
    for pos in range(len(text) - 2, 0, -1):
        if text[pos] == 0x0A and text[pos - 1] == 0x0A:
            text[pos] = ord("/")
    text += b"\n"
    return bytes(text)


def info_sender_for_bounce(sender: str) -> str:
    """injectbounce(): ``owner-@host-@[]`` (a VERP-style list sender) -> ``owner-@host``."""
    if sender.endswith("-@[]"):
        return sender[:-4]
    return sender


@dataclass(frozen=True, kw_only=True)
class BounceMail:
    sender: str  # envelope sender of the bounce: "" or "#@[]"
    recipient: str
    message: bytes


def compose(
    sender: str, entries: bytes, message: bytes, date: str, cfg: SendConfig
) -> BounceMail | None:
    """The bounce of a message from ``sender`` (already through info_sender_for_bounce).

    ``date`` is date822fmt's text (``25 Nov 2026 18:22:37 -0000``). Returns
    None for a triple bounce: the message was a double bounce, discard it.
    """
    if sender == DOUBLE_BOUNCE_SENDER:
        return None
    single = bool(sender)
    recipient = sender if single else cfg.doublebounceto
    head = (
        f"Date: {date.rstrip(chr(10))}\n"
        f"From: {quote(cfg.bouncefrom)}@{cfg.bouncehost}\n"
        f"To: {quote2(recipient)}\n"
        "Subject: failure notice\n"
        "\n"
        f"Hi. This is the qmail-send program at {cfg.bouncehost}"
        f"{_INTRO_SINGLE if single else _INTRO_DOUBLE}"
    )
    below = (_BELOW_SINGLE if single else _BELOW_DOUBLE) + f"Return-Path: <{quote2(sender)}>\n"
    return BounceMail(
        sender="" if single else DOUBLE_BOUNCE_SENDER,
        recipient=recipient,
        message=head.encode("latin-1") + entries + below.encode("latin-1") + message,
    )
