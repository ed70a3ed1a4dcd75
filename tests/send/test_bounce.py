"""Bounce texts, byte for byte (qmail-send.c addbounce/injectbounce, quote.c)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.quote import quote, quote2
from server.send.bounce import (
    bounce_entry,
    compose,
    info_sender_for_bounce,
    strip_vdom_prepend,
)
from server.send.config import SendConfig, colon_map

CFG = SendConfig(
    bouncefrom="MAILER-DAEMON",
    bouncehost="mx.example.org",
    doublebounceto="postmaster@mx.example.org",
)
DATE = "14 Nov 2023 22:13:20 -0000"


def test_entry_plain() -> None:
    assert bounce_entry("bob@x", b"Sorry, no mailbox here by that name. (#5.1.1)\n", {}) == (
        b"<bob@x>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
    )


def test_entry_adds_newline_and_slashes_blank_lines() -> None:
    assert bounce_entry("b\nob@x", b"one\n\ntwo", {}) == b"<b_ob@x>:\none\n/two\n\n"
    assert bounce_entry("bob@x", b"", {}) == b"<bob@x>:\n\n"


@given(st.text(alphabet="ab@\n.", max_size=12), st.binary(max_size=40))
def test_entry_never_has_a_blank_line_inside(recip: str, report: bytes) -> None:
    entry = bounce_entry(recip, report, {})
    assert entry.endswith(b"\n")
    # only the entry's own end may hold a blank line
    assert b"\n\n" not in entry[:-2]


def test_strip_vdom_prepend() -> None:
    vdoms = colon_map(["virt.example:alice", ".sub.example:s", "plain.example:"])
    assert strip_vdom_prepend("alice-bob@virt.example", vdoms) == "bob@virt.example"
    assert strip_vdom_prepend("s-x@a.sub.example", vdoms) == "x@a.sub.example"
    assert strip_vdom_prepend("other-bob@virt.example", vdoms) == "other-bob@virt.example"
    assert strip_vdom_prepend("x@plain.example", vdoms) == "x@plain.example"
    assert strip_vdom_prepend("nodomain", vdoms) == "nodomain"


def test_quote() -> None:
    assert quote("MAILER-DAEMON") == "MAILER-DAEMON"
    assert quote("a b") == '"a b"'
    assert quote('a"b\\') == '"a\\"b\\\\"'
    assert quote(".x") == '".x"'
    assert quote("a..b") == '"a..b"'
    assert quote("") == '""'
    assert quote2("a b@x.y") == '"a b"@x.y'
    assert quote2("") == ""


def test_verp_sender() -> None:
    assert info_sender_for_bounce("owner-@list.example-@[]") == "owner-@list.example"
    assert info_sender_for_bounce("#@[]") == "#@[]"


def test_single_bounce_byte_exact() -> None:
    entries = b"<bob@mx.example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
    mail = compose("alice@example.com", entries, b"Subject: hi\n\nhello\n", DATE, CFG)
    assert mail is not None
    assert mail.sender == ""
    assert mail.recipient == "alice@example.com"
    assert mail.message == (
        b"Date: 14 Nov 2023 22:13:20 -0000\n"
        b"From: MAILER-DAEMON@mx.example.org\n"
        b"To: alice@example.com\n"
        b"Subject: failure notice\n"
        b"\n"
        b"Hi. This is the qmail-send program at mx.example.org.\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\n"
        b"\n"
        b"<bob@mx.example.org>:\n"
        b"Sorry, no mailbox here by that name. (#5.1.1)\n"
        b"\n"
        b"--- Below this line is a copy of the message.\n"
        b"\n"
        b"Return-Path: <alice@example.com>\n"
        b"Subject: hi\n"
        b"\n"
        b"hello\n"
    )


def test_double_bounce_byte_exact() -> None:
    entries = b"<alice@example.com>:\nno such user\n\n"
    mail = compose("", entries, b"X: y\n\nz\n", DATE, CFG)
    assert mail is not None
    assert (mail.sender, mail.recipient) == ("#@[]", "postmaster@mx.example.org")
    assert mail.message == (
        b"Date: 14 Nov 2023 22:13:20 -0000\n"
        b"From: MAILER-DAEMON@mx.example.org\n"
        b"To: postmaster@mx.example.org\n"
        b"Subject: failure notice\n"
        b"\n"
        b"Hi. This is the qmail-send program at mx.example.org.\n"
        b"I tried to deliver a bounce message to this address, but the bounce bounced!\n"
        b"\n"
        b"<alice@example.com>:\n"
        b"no such user\n"
        b"\n"
        b"--- Below this line is the original bounce.\n"
        b"\n"
        b"Return-Path: <>\n"
        b"X: y\n"
        b"\n"
        b"z\n"
    )


def test_triple_bounce_is_none() -> None:
    assert compose("#@[]", b"", b"", DATE, CFG) is None
