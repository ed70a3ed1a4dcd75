"""Hypothesis properties of qmail-smtpd: bad input never breaks it, nothing relays."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from server.smtpd import replies
from server.smtpd.address import addrparse
from server.smtpd.core import SmtpProtocolError
from server.smtpd.policy import Rcpthosts

from .helpers import replies_of, session

_WORDS = [
    b"HELO x",
    b"EHLO",
    b"MAIL FROM:<a@b>",
    b"MAIL FROM:",
    b"RCPT TO:<b@example.org>",
    b"RCPT TO:<@r:x@far>",
    b"DATA",
    b"RSET",
    b"NOOP",
    b"VRFY",
    b"HELP",
    b"QUIT",
    b".",
    b"..",
    b"Received: x",
    b"",
    b"\x00",
    b"\r",
    b"\n",
    b"\r\n",
    b" ",
    b"<",
    b">",
    b'"',
    b"\\",
]
streams = st.lists(st.one_of(st.sampled_from(_WORDS), st.binary(max_size=20)), max_size=40).map(
    lambda parts: b"\r\n".join(parts)
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=300, deadline=None)
@given(streams, st.lists(st.integers(min_value=0), max_size=8))
def test_random_streams_only_ever_reply(data: bytes, cuts: list[int]) -> None:
    try:
        whole = session(data)
        parts = session(_chunks(data, cuts))
        single = session([data[i : i + 1] for i in range(len(data))])
    except SmtpProtocolError:  # the only error the core may raise
        raise AssertionError("a client's bytes must never be a driver error") from None
    assert whole.output == parts.output == single.output
    assert whole.exit_code in (0, 1)
    for line in replies_of(whole.output):
        assert line[:3].isdigit()


@settings(max_examples=200, deadline=None)
@given(streams, st.binary(max_size=30))
def test_trailing_bytes_after_quit_are_ignored(data: bytes, tail: bytes) -> None:
    base = session(data + b"\r\nQUIT\r\n", eof=False)
    more = session(data + b"\r\nQUIT\r\n" + tail, eof=False)
    assert base.output == more.output


# -- no relaying without RELAYCLIENT ------------------------------------------

LOCAL = frozenset({b"example.org", b".example.org"})
HOSTS = Rcpthosts(hosts=LOCAL)
_local_part = st.text('abcxyz%!@.:"\\ ', min_size=0, max_size=12).map(str.encode)
_host = st.sampled_from(
    [
        b"example.org",
        b"EXAMPLE.ORG",
        b"mx.example.org",
        b"far.example",
        b"example.org.",
        b"[127.0.0.1]",
        b"[10.0.0.1]",
        b"example.org.far.example",
        b"xexample.org",
        b"",
    ]
)


def _allowed_host(addr: bytes) -> bool:
    """What rcpthosts() lets through: the part after the LAST @, lower-cased,
    equal to an entry or ending in an entry that starts with a dot."""
    if b"@" not in addr:
        return True
    host = addr.rsplit(b"@", 1)[1].lower()
    return host == b"example.org" or host.endswith(b".example.org")


@settings(max_examples=400, deadline=None)
@given(_local_part, _host, st.sampled_from([b"<{}>", b"{}", b"<@route,@r2:{}>", b'<"{}">']))
def test_no_relaying_without_relayclient(local: bytes, host: bytes, shape: bytes) -> None:
    text = local + b"@" + host
    arg = b"TO:" + shape.replace(b"{}", text)
    addr = addrparse(arg)
    data = b"MAIL FROM:<a@b>\r\nRCPT " + arg + b"\r\nDATA\r\n.\r\n"
    out = session(data, liphost=None, rcpthosts=HOSTS)
    accepted = [r for m in out.queued for r in m.recipients]
    if addr is None or not _allowed_host(addr):
        assert accepted == []
    else:
        assert accepted == [addr]
    for rcpt in accepted:
        assert HOSTS.allowed(rcpt)


def test_relay_shapes() -> None:
    """The shapes the issue names, with what qmail-smtpd does with each."""
    cases = {
        b"<user%far.example@example.org>": True,  # host is after the last @
        b"<@example.org:user@far.example>": False,  # source route dropped
        b'<"user@far.example"@example.org>': True,  # quotes dropped, last @ wins
        b'<"user@example.org"@far.example>': False,
        b"<user@far.example.>": False,
        b"<user@example.org.>": False,  # a trailing dot is not stripped
        b"<user@EXAMPLE.Org>": True,
        b"<user@a.b.example.org>": True,  # via .example.org
        b"<user@[10.0.0.1]>": False,
        b"<user>": True,  # no @: always allowed
        b"<user@far.example@example.org>": True,
    }
    for arg, allowed in cases.items():
        out = session(b"MAIL FROM:<>\r\nRCPT TO:" + arg + b"\r\n", rcpthosts=HOSTS)
        assert out.output.endswith(b"250 ok\r\n" if allowed else replies.NOGATEWAY), arg


@settings(max_examples=300, deadline=None)
@given(_local_part, _host, st.sampled_from([b"", b"-rc"]))
def test_relay_reject_patch_lets_no_hack_through(local: bytes, host: bytes, rc: bytes) -> None:
    """With the patch no recipient with @, % or ! before its last @ is taken,
    not even from a RELAYCLIENT."""
    data = b"MAIL FROM:<>\r\nRCPT TO:<" + local + b"@" + host + b">\r\nDATA\r\n.\r\n"
    out = session(data, rcpthosts=HOSTS, relay_reject=True, relayclient=rc)
    for message in out.queued:
        for rcpt in message.recipients:
            assert rc == b"" or rcpt.endswith(rc)
            addr = rcpt[: len(rcpt) - len(rc)]
            local_part = addr.rpartition(b"@")[0] if b"@" in addr else addr
            assert not set(local_part) & set(b"@%!")
