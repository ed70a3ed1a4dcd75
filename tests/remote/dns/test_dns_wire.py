"""dn_expand's limits, name text forms, query building."""

from __future__ import annotations

import pytest
from dnslib import QTYPE, DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from server.dns.wire import (
    WireError,
    dn_expand,
    make_query,
    ntop,
    pton,
    same_question,
)

HEADER = b"\0" * 12


def test_plain_name() -> None:
    msg = HEADER + b"\x03foo\x07example\x00"
    assert dn_expand(msg, 12, len(msg)) == ("foo.example", 13)


def test_root() -> None:
    assert dn_expand(HEADER + b"\x00", 12, 13) == (".", 1)


def test_pointer_length_counts_two_bytes() -> None:
    msg = HEADER + b"\x07example\x00" + b"\x03foo\xc0\x0c"
    assert dn_expand(msg, 21, len(msg)) == ("foo.example", 6)


def test_pointer_loop() -> None:
    msg = HEADER + b"\xc0\x0c"
    with pytest.raises(WireError, match="loop"):
        dn_expand(msg, 12, len(msg))


def test_pointer_outside() -> None:
    msg = HEADER + b"\xc0\xff"
    with pytest.raises(WireError):
        dn_expand(msg, 12, len(msg))


def test_cut_by_end() -> None:
    msg = HEADER + b"\x03foo\x07example\x00"
    with pytest.raises(WireError):
        dn_expand(msg, 12, 20)
    # libc wants one byte beyond each label: the terminating length
    with pytest.raises(WireError):
        dn_expand(msg, 12, len(msg) - 1)


def test_extended_label_type() -> None:
    with pytest.raises(WireError, match="label type"):
        dn_expand(HEADER + b"\x41abc\x00", 12, 17)


def test_name_too_long() -> None:
    msg = HEADER + (b"\x3f" + b"a" * 63) * 4 + b"\x00"
    with pytest.raises(WireError):
        dn_expand(msg, 12, len(msg))


def test_ntop_escapes() -> None:
    assert ntop([b"a.b", b"c d", b'x"@$', b"\x7f"]) == 'a\\.b.c\\032d.x\\"\\@\\$.\\127'


def test_pton_roundtrip_and_errors() -> None:
    assert pton("foo.example.") == [b"foo", b"example"]
    assert pton("a\\.b.c") == [b"a.b", b"c"]
    assert pton("\\065b") == [b"Ab"]
    assert pton(".") == []
    for bad in ("a..b", ".a", "x" * 64, "a\\", ".".join(["abcdefgh"] * 30)):
        with pytest.raises(WireError):
            pton(bad)


def test_make_query_matches_dnslib() -> None:
    query = make_query("Far.Example", 255, 0x1234)
    parsed = DNSRecord.parse(query)
    assert parsed.header.id == 0x1234 and parsed.header.rd == 1
    assert str(parsed.q.qname) == "Far.Example." and parsed.q.qtype == QTYPE.ANY
    assert parsed.ar == []  # no EDNS: glibc does not add OPT by default


def test_same_question() -> None:
    query = make_query("far.example", 15, 7)
    good = DNSRecord.parse(make_query("FAR.example", 15, 7)).reply().pack()
    other = DNSRecord.parse(make_query("near.example", 15, 7)).reply().pack()
    assert same_question(query, good)
    assert not same_question(query, other)


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=90))
def test_dn_expand_only_wire_errors(data: bytes, pos: int) -> None:
    try:
        name, used = dn_expand(data, pos, len(data))
    except WireError:
        return
    assert used >= 1 and pos + used <= len(data)
    assert isinstance(name, str)
