"""The envelope stream qmail-queue reads on fd 1, and the intd/todo file format."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.queue import codes
from server.queue.envelope import (
    ADDR,
    EnvelopeError,
    EnvelopeReader,
    TodoFormatError,
    encode_envelope,
    parse_envelope,
    parse_todo,
)

GOOD = b"Fa@b.example\0Tc@d.example\0Te@f.example\0\0"


def feed_bytewise(data: bytes) -> EnvelopeReader:
    reader = EnvelopeReader()
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
    return reader


def outcome(data: bytes, *, bytewise: bool) -> object:
    """The envelope, or the exit code qmail-queue would give."""
    try:
        if bytewise:
            return feed_bytewise(data).eof()
        reader = EnvelopeReader()
        reader.feed(data)
        return reader.eof()
    except EnvelopeError as exc:
        return exc.code


def test_encode_is_what_qmail_c_writes() -> None:
    assert encode_envelope("a@b.example", ["c@d.example", "e@f.example"]) == GOOD
    assert encode_envelope("", []) == b"F\0\0"
    # C strings: an address ends at its first NUL.
    assert encode_envelope("a\0b", ["c\0d"]) == b"Fa\0Tc\0\0"


def test_whole_bytewise_and_with_trailing_bytes() -> None:
    whole = parse_envelope(GOOD)
    assert whole.sender == b"a@b.example"
    assert whole.recipients == (b"c@d.example", b"e@f.example")
    assert whole.echo == GOOD[:-1]
    assert feed_bytewise(GOOD).eof() == whole
    reader = EnvelopeReader()
    assert reader.feed(GOOD + b"junk")
    assert reader.result() == whole
    assert reader.trailing == b"junk"
    reader.feed(b"more")
    assert reader.trailing == b"junkmore"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", codes.READ_ERROR),
        (b"F", codes.READ_ERROR),
        (b"Fa@b\0", codes.READ_ERROR),
        (b"Fa@b\0Tc@d\0", codes.READ_ERROR),
        (b"Tc@d\0\0", codes.ENVELOPE_FORMAT),
        (b"\0", codes.ENVELOPE_FORMAT),
        (b"Fa@b\0Xc@d\0\0", codes.ENVELOPE_FORMAT),
        (b"Fa@b\0Fc@d\0\0", codes.ENVELOPE_FORMAT),
        (b"F" + b"a" * ADDR + b"\0\0", codes.ADDRESS_TOO_LONG),
        (b"Fa\0T" + b"r" * ADDR + b"\0\0", codes.ADDRESS_TOO_LONG),
    ],
)
def test_bad_envelopes(data: bytes, code: int) -> None:
    assert outcome(data, bytewise=False) == code
    assert outcome(data, bytewise=True) == code


def test_longest_address_is_1002_bytes() -> None:
    ok = b"F" + b"a" * (ADDR - 1) + b"\0T" + b"b" * (ADDR - 1) + b"\0\0"
    env = parse_envelope(ok)
    assert len(env.sender) == ADDR - 1
    assert len(env.recipients[0]) == ADDR - 1


def test_too_long_is_seen_before_end_of_input() -> None:
    # qmail-queue gives up after 1003 bytes without a NUL, not at EOF.
    reader = EnvelopeReader()
    reader.feed(b"F" + b"a" * (ADDR - 1))
    with pytest.raises(EnvelopeError) as info:
        reader.feed(b"a")
    assert info.value.code == codes.ADDRESS_TOO_LONG
    assert info.value.echo == b"F" + b"a" * ADDR


def test_bad_tag_is_not_echoed() -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_envelope(b"Fa@b\0Tc@d\0Xe\0\0")
    assert info.value.echo == b"Fa@b\0Tc@d\0"


addresses = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"x"))


@given(addresses, st.lists(addresses, max_size=5), st.binary(max_size=20))
def test_round_trip_any_bytes(sender: bytes, rcpts: list[bytes], trailing: bytes) -> None:
    data = b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0"
    reader = EnvelopeReader()
    reader.feed(data + trailing)
    env = reader.result()
    assert (env.sender, list(env.recipients)) == (sender, rcpts)
    assert reader.trailing == trailing
    assert feed_bytewise(data).eof() == env


@given(st.binary(max_size=200))
def test_any_input_parses_or_raises_envelope_error(data: bytes) -> None:
    assert outcome(data, bytewise=False) == outcome(data, bytewise=True)


def test_str_addresses_survive_any_bytes() -> None:
    raw = encode_envelope("caf\udce9@x", ["b\u00e9@y"])
    assert raw == b"Fcaf\xe9@x\0Tb\xc3\xa9@y\0\0"


def test_parse_todo() -> None:
    todo = parse_todo(b"u1000\0p4242\0Fa@b\0Tc@d\0Te@f\0")
    assert (todo.uid, todo.pid, todo.sender, todo.recipients) == (1000, 4242, "a@b", ("c@d", "e@f"))


def test_parse_todo_ignores_an_unterminated_last_record() -> None:
    assert parse_todo(b"u1\0p2\0F\0Tc@d\0Te@").recipients == ("c@d",)


@pytest.mark.parametrize("data", [b"u1\0p2\0Fa\0\0", b"u1\0Xfoo\0"])
def test_parse_todo_unknown_record(data: bytes) -> None:
    with pytest.raises(TodoFormatError):
        parse_todo(data)


@given(st.binary(max_size=100))
def test_parse_todo_never_crashes(data: bytes) -> None:
    with contextlib.suppress(TodoFormatError):
        parse_todo(data)
