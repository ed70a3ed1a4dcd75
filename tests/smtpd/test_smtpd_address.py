"""addrparse(), received() and the small policy functions, against qmail-smtpd.c/received.c."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.smtpd.address import MAX_ADDRESS, addrparse, scan_bracket
from server.smtpd.policy import bmf_listed, parse_databytes, relay_hack
from server.smtpd.received import received, safe


@pytest.mark.parametrize(
    ("arg", "addr"),
    [
        (b"FROM:<a@b>", b"a@b"),
        (b"FROM:<>", b""),
        (b"FROM:<a@b> SIZE=100 BODY=8BITMIME", b"a@b"),
        (b"FROM: a@b SIZE=100", b"a@b"),  # no <: after the colon, up to a space
        (b"FROM:a@b", b"a@b"),
        (b"a@b", b""),  # neither < nor :
        (b"TO:<@r1,@r2:u@h>", b"u@h"),
        (b"TO:<@r1>", b""),  # a route without its colon eats everything
        (b'TO:<"a b>c"@h>', b"a b>c@h"),
        (b"TO:<a\\>b@h>", b"a>b@h"),
        (b"TO:<a@h", b"a@h"),  # no terminator: fine
        (b"TO:x<y@h>", b"y@h"),
        (b"TO:<a\\", b"a"),
    ],
)
def test_addrparse(arg: bytes, addr: bytes) -> None:
    assert addrparse(arg) == addr


def _is_me(ip: tuple[int, int, int, int]) -> bool:
    return ip == (127, 0, 0, 1)


@pytest.mark.parametrize(
    ("addr", "result"),
    [
        (b"u@[127.0.0.1]", b"u@local.example"),
        (b"u@[127.000.0.1]", b"u@local.example"),
        (b"u@[383.0.0.1]", b"u@local.example"),  # 383 & 255 == 127, as ip->d[0] = u
        (b"u@[127.0.0.1].x", b"u@[127.0.0.1].x"),
        (b"u@[127.0.0.2]", b"u@[127.0.0.2]"),
        (b"u@[127.0.0]", b"u@[127.0.0]"),
        (b"[127.0.0.1]", b"[127.0.0.1]"),
    ],
)
def test_localiphost(addr: bytes, result: bytes) -> None:
    assert addrparse(b"TO:<" + addr + b">", liphost=b"local.example", is_me=_is_me) == result


def test_scan_bracket() -> None:
    assert scan_bracket(b"[1.2.3.4]x") == ((1, 2, 3, 4), 9)
    assert scan_bracket(b"[1.2.3.]") is None
    assert scan_bracket(b"1.2.3.4") is None


@given(st.binary(max_size=1200))
def test_addrparse_takes_any_bytes(arg: bytes) -> None:
    addr = addrparse(arg)
    assert addr is None or len(addr) <= MAX_ADDRESS


def _bracketed(b: bytes) -> bool:
    """An address whose '>' ends it: qmail-smtpd.c skips a source route ('@'
    up to ':') first, so '<@>' with no ':' reads on past the bracket."""
    return not set(b) & set(b'>"\\') and (not b.startswith(b"@") or b":" in b)


@given(st.binary(max_size=60).filter(_bracketed), st.binary(max_size=30))
def test_addrparse_ignores_what_follows_the_bracket(inner: bytes, tail: bytes) -> None:
    assert addrparse(b"FROM:<" + inner + b">" + tail) == addrparse(b"FROM:<" + inner + b">")


def test_relay_hack() -> None:
    assert relay_hack(b"a%b@h") and relay_hack(b"a!b@h") and relay_hack(b"a@b@h")
    assert relay_hack(b"a%b") and relay_hack(b"a!b")
    assert not relay_hack(b"ab@h%x!y") and not relay_hack(b"") and not relay_hack(b"a@h")


def test_bmf() -> None:
    bmf = frozenset({b"a@b.example", b"@c.example"})
    assert bmf_listed(bmf, b"A@B.example") and bmf_listed(bmf, b"x@y@C.EXAMPLE")
    assert not bmf_listed(bmf, b"") and not bmf_listed(None, b"a@b.example")
    assert not bmf_listed(bmf, b"c.example")


def test_parse_databytes() -> None:
    assert parse_databytes("1000 bytes") == 1000
    assert parse_databytes(" 5") == 0
    assert parse_databytes("4294967296") == 0
    assert parse_databytes("4294967297") == 1


def test_received_line() -> None:
    line = received(
        protocol=b"SMTP",
        local=b"mx.example",
        remoteip=b"192.0.2.1",
        remotehost=b"relay1.uu.net",
        remoteinfo=b"7",
        helo=b"uunet.uu.net",
        date=b"26 Sep 1995 04:46:54 -0000",
    )
    # The example in received.c's comment.
    assert line == (
        b"Received: from relay1.uu.net (HELO uunet.uu.net) (7@192.0.2.1)\n"
        b"  by mx.example with SMTP; 26 Sep 1995 04:46:54 -0000\n"
    )
    assert safe(b"a b(c)\xff_~x.@%+/=:-") == b"a?b?c???~x.@%+/=:-".replace(b"~", b"?")
