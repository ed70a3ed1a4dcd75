"""token822 parsing, folding and address lists; the rewriting rules; quoting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.inject.addresses import Rewriter
from server.inject.headers import H, known, split, valid
from server.inject.token822 import (
    ParseError,
    T,
    Token,
    addrlist,
    parse,
    unparse,
    unquote,
)
from server.quote import quote2_bytes as quote2
from server.quote import quote_bytes as quote
from server.quote import quote_need_bytes as quote_need

REWRITE = Rewriter.from_names(b"mx.example.org", b"example.org", b"example.org")


def atom(text: bytes) -> Token:
    return Token(T.ATOM, text)


def test_parse_kinds() -> None:
    assert parse(b'To: "q \\" s" (c (n) d) [1.2] a\\.b <x@y>;') == [
        atom(b"To"),
        Token(T.COLON),
        Token(T.QUOTE, b'q " s'),
        Token(T.COMMENT, b"c n d"),  # nested parentheses are dropped
        Token(T.LITERAL, b"1.2"),
        atom(b"a.b"),
        Token(T.LEFT),
        atom(b"x"),
        Token(T.AT),
        atom(b"y"),
        Token(T.RIGHT),
        Token(T.SEMI),
    ]


def test_odd_atoms_become_quotes() -> None:
    assert parse(b"a)b") == [Token(T.QUOTE, b"a)b")]
    assert parse(b"a\x80") == [Token(T.QUOTE, b"a\x80")]
    assert parse(b"x\\") == [atom(b"x")]  # a final backslash is dropped


@pytest.mark.parametrize("bad", [b")", b"]", b"(open", b'"open', b"[open", b'"a\\'])
def test_parse_errors(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse(bad)


def test_unparse_folds_at_commas_past_80_columns() -> None:
    names = [b"a", b"b", b"c", b"d" * 28 + b"@" + b"e" * 25 + b".ffff", b"g@h.i"]
    names.append(b"j" * 21 + b"@" + b"k" * 16 + b".ll")
    # as netqmail-1.06's qmail-inject -n prints it
    assert rewritten(b"To: " + b", ".join(names)) == (
        b"To: a@mx.example.org, b@mx.example.org, c@mx.example.org,\n  "
        + names[3]
        + b", g@h.i,\n  "
        + names[5]
        + b"\n"
    )
    assert unparse(parse(b"To: x")) == b"To: x\n"
    assert unparse(parse(b"To: a, b"), 0) == b"To: a, b\n"


def rewritten(field: bytes) -> bytes:
    return unparse(addrlist(parse(field), REWRITE))


@pytest.mark.parametrize(
    ("field", "out"),
    [
        (b"To: joe", b"To: joe@mx.example.org\n"),
        (b"To: joe@host", b"To: joe@host.example.org\n"),
        (b"To: joe@host+", b"To: joe@host.example.org\n"),
        (b"To: joe@[1.2.3.4]", b"To: joe@[1.2.3.4]\n"),
        (b"To: <@r1,@r2:u@h>", b"To: <u@h.example.org>\n"),
        (b"To: <>, <x@[]>", b"To: <>, <x@[]>\n"),
        (b"To: y., z@", b"To: y@mx.example.org, z@mx.example.org\n"),
        (b"To: list: a, b;", b"To: list: a@mx.example.org, b@mx.example.org;\n"),
        (b"To: (c) d@e.f", b"To: d@e.f (c)\n"),  # a comment before moves after
        (b"To: Joe Bloggs <j@x.y>", b"To: Joe Bloggs <j@x.y>\n"),
        (b"To: a b", b"To: a@mx.example.org, b@mx.example.org\n"),
    ],
)
def test_rewriting(field: bytes, out: bytes) -> None:
    assert rewritten(field) == out


@pytest.mark.parametrize("bad", [b"To: a:b", b"To: a>", b"To: g: x; h: y;;"])
def test_address_list_errors(bad: bytes) -> None:
    with pytest.raises(ParseError):
        addrlist(parse(bad), REWRITE)


def test_unquote() -> None:
    assert unquote(parse(b'"a b"@[1.2] (c)')) == b"a b@[1.2]"


def test_quote() -> None:
    assert not quote_need(b"joe.user+x")
    assert quote(b"a b") == b'"a b"'
    assert quote(b'a"b') == b'"a\\"b"'
    assert quote(b".a") == b'".a"' and quote(b"a..b") == b'"a..b"' and quote(b"") == b'""'
    assert quote2(b"a b@c d") == b'"a b"@c d'
    assert quote2(b"") == b""


def test_header_names() -> None:
    assert known(b"To: x\n") is H.TO
    assert known(b"rEsEnT-tO \t: x\n") is H.R_TO
    assert known(b"Toe: x\n") is H.UNKNOWN
    assert known(b"Resent_To: x\n") is H.UNKNOWN  # "-" must be "-"
    assert valid(b"X-Y : z\n") and not valid(b" x: y\n") and not valid(b": y\n")
    assert not valid(b"no colon\n")


def test_split() -> None:
    s = split(b"From a b\nSubject: x\n  more\n\nbody\nend")
    assert s.fields == [b"MBOX-Line: From a b\n", b"Subject: x\n  more\n"]
    assert s.body == b"\nbody\nend\n"
    s = split(b"To: x\nnot a field\n")
    assert s.fields == [b"To: x\n"] and s.body == b"\nnot a field\n"
    assert split(b"To: x").body == b""


# -- properties -------------------------------------------------------------------

header_bytes = st.binary(max_size=60)
pieces = st.sampled_from(
    [b"a", b"b@c", b".", b",", b";", b":", b"<", b">", b" ", b"(c)", b'"q"', b"[1]", b"\\", b"+"]
)
fields = st.lists(pieces, max_size=16).map(lambda p: b"To: " + b"".join(p))


@given(header_bytes)
def test_property_parse_or_parse_error(data: bytes) -> None:
    try:
        tokens = parse(data)
    except ParseError:
        return
    line = unparse(tokens)
    assert line.endswith(b"\n")
    # every other newline is a fold, followed by white space
    assert all(rest.startswith(b" ") for rest in line[:-1].split(b"\n")[1:])


@given(fields, st.binary(max_size=5))
def test_property_address_lists(field: bytes, trailing: bytes) -> None:
    for data in (field, field + trailing):
        try:
            out = rewritten(data)
        except ParseError:
            continue
        assert out.startswith(b"To:") and out.endswith(b"\n")


@given(st.binary(max_size=200))
def test_property_split_keeps_every_line(data: bytes) -> None:
    s = split(data)
    expected = data if data.endswith(b"\n") or not data else data + b"\n"
    # a field made of a "From " line carries "MBOX-Line: " before it; a field
    # that was itself written "MBOX-Line: ..." keeps its name
    starts = [line + b"\n" for line in expected.split(b"\n")]
    text, at = b"", 0
    for f in s.fields:
        mboxed = starts[at].startswith(b"From ")
        text += f.removeprefix(b"MBOX-Line: ") if mboxed else f
        at += f.count(b"\n")
    text += s.body
    # the only byte ever added is the "\n" before a body that starts without one
    assert text == expected or text == expected.replace(s.body[1:], s.body, 1)
    assert all(valid(f) for f in s.fields)
