"""rewrite(): locals, virtualdomains, percenthack, envnoathost (qmail-send.c)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.send.config import SendConfig, colon_map, keyset
from server.send.todo import BadEnvelope, parse_envelope, rewrite, split

CFG = SendConfig(
    envnoathost="example.org",
    locals=keyset(["example.org", "mx.example.org"]),
    percenthack=keyset(["gw.example.org"]),
    vdoms=colon_map(
        [
            "virt.example:alice",
            "joe@other.example:joe",
            ".sub.example:subs",
            "exempt.sub.example:",
            "no colon here",
            "VIRT2.example:first",
            "virt2.example:second",
        ]
    ),
)


def rw(addr: str) -> tuple[str, str]:
    r = rewrite(addr, CFG)
    return r.channel, r.address


def test_locals_are_case_insensitive() -> None:
    assert rw("bob@Example.ORG") == ("local", "bob@Example.ORG")
    assert rw("bob@far.example") == ("remote", "bob@far.example")


def test_envnoathost() -> None:
    assert rw("bob") == ("local", "bob@example.org")


def test_percenthack_repeats() -> None:
    assert rw("u%far.example@gw.example.org") == ("remote", "u@far.example")
    assert rw("u%example.org%gw.example.org@gw.example.org") == ("local", "u@example.org")
    assert rw("u%gw.example.org%x@gw.example.org") == ("remote", "u%gw.example.org@x")
    assert rw("u%example.org@far.example") == ("remote", "u%example.org@far.example")


def test_virtualdomains() -> None:
    assert rw("bob@virt.example") == ("local", "alice-bob@virt.example")
    assert rw("joe@other.example") == ("local", "joe-joe@other.example")
    assert rw("ann@other.example") == ("remote", "ann@other.example")
    assert rw("x@a.sub.example") == ("local", "subs-x@a.sub.example")
    assert rw("x@exempt.sub.example") == ("remote", "x@exempt.sub.example")
    # a later line wins (constmap chains new entries in front)
    assert rw("x@virt2.example") == ("local", "second-x@virt2.example")


def test_catch_all_virtualdomain() -> None:
    cfg = SendConfig(locals=keyset(["me.example"]), vdoms=colon_map([":catch"]))
    assert rewrite("x@any.where", cfg).address == "catch-x@any.where"


def test_split_writes_qmail_records() -> None:
    env = parse_envelope(b"u1000\0p77\0Fa@b\0Tx@example.org\0Ty@far.example\0Tz@example.org\0")
    plan = split(env, CFG)
    assert plan.info == b"Fa@b\0"
    assert plan.chan == {
        "local": b"Tx@example.org\0Tz@example.org\0",
        "remote": b"Ty@far.example\0",
    }


def test_parse_envelope_bad_record() -> None:
    try:
        parse_envelope(b"u1\0p2\0Fa@b\0Xjunk\0")
    except BadEnvelope as exc:
        assert exc.partial.senders == ["a@b"]
    else:
        raise AssertionError("no BadEnvelope")


@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255)))
def test_rewrite_total(addr: str) -> None:
    r = rewrite(addr, CFG)
    assert r.channel in ("local", "remote")
    assert "@" in r.address


@given(st.binary())
def test_parse_envelope_parses_or_raises(data: bytes) -> None:
    try:
        env = parse_envelope(data)
    except BadEnvelope:
        return
    assert len(env.recipients) <= data.count(b"\0")
