"""The .qmail search order and line parser (qmail-local.c qmesearch, main loop)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.local import dotqmail, lines
from server.local.dotqmail import Instruction, candidates, parse, parse_line, safe_ext


def names(dash: str, ext: str) -> list[str]:
    return [c.name for c in candidates(dash, ext)]


def test_search_order_matches_qmail_local_comment_table() -> None:
    # The table in qmail-local.c above qmesearch().
    assert names("", "") == [".qmail", ".qmaildefault"]
    assert names("-", "") == [".qmail-", ".qmail-default"]
    assert names("-", "a") == [".qmail-a", ".qmail-default"]
    assert names("-", "a-") == [".qmail-a-", ".qmail-a-default", ".qmail-default"]
    assert names("-", "a-b") == [".qmail-a-b", ".qmail-a-default", ".qmail-default"]
    assert names("-", "a-b-c") == [
        ".qmail-a-b-c",
        ".qmail-a-b-default",
        ".qmail-a-default",
        ".qmail-default",
    ]


def test_default_value_is_the_unlowered_rest_of_the_extension() -> None:
    found = {c.name: c.default_from for c in candidates("-", "Foo-Bar")}
    assert found[".qmail-foo-bar"] is None
    assert "Foo-Bar"[found[".qmail-foo-default"] or 0 :] == "Bar"
    assert found[".qmail-default"] == 0
    # An exact file whose name ends in "default" sets DEFAULT too.
    exact = next(iter(candidates("-", "list-default")))
    assert exact.default_from == 5


def test_safe_ext_lowers_and_turns_dots_into_colons() -> None:
    assert safe_ext("Joe.Smith-X") == "joe:smith-x"
    assert names("-", "a.b")[0] == ".qmail-a:b"


def test_line_kinds() -> None:
    text = b"# note\n./Maildir/\n./Mailbox\n/var/mail/joe\n|preline x\n&bob@a\nalice\n+list\n\n"
    got = [(i.kind, i.arg) for i in parse(text)]
    assert got == [
        ("comment", b"# note"),
        ("maildir", b"./Maildir/"),
        ("mbox", b"./Mailbox"),
        ("mbox", b"/var/mail/joe"),
        ("program", b"preline x"),
        ("forward", b"bob@a"),
        ("forward", b"alice"),
        ("list", b"list"),
        ("blank", b""),
    ]


def test_trailing_blanks_are_dropped_and_first_line_is_marked() -> None:
    first, second = parse(b"\t\n./Maildir/ \t\n")
    assert first.kind == "blank" and first.first
    assert second == Instruction(kind="maildir", arg=b"./Maildir/")


def test_missing_final_newline_is_supplied() -> None:
    assert parse(b"&a@b") == [Instruction(kind="forward", arg=b"a@b", first=True)]


def test_kind_is_decided_before_a_nul_cuts_the_line() -> None:
    instr = parse_line(b"./Mail\0dir/")
    assert instr.kind == "maildir" and instr.arg == b"./Mail"


@given(st.binary(max_size=300))
def test_parse_never_fails_and_keeps_one_instruction_per_line(data: bytes) -> None:
    got = parse(data)
    expected = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    assert len(got) == expected
    assert all(b"\n" not in i.arg for i in got)


@given(st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b), min_size=1, max_size=12))
def test_parse_whole_equals_line_by_line(lines_: list[bytes]) -> None:
    whole = parse(b"".join(line + b"\n" for line in lines_))
    one_by_one = [parse_line(line, first=(n == 0)) for n, line in enumerate(lines_)]
    assert whole == one_by_one


@given(st.binary(max_size=100).filter(lambda b: b"\n" not in b), st.binary(max_size=100))
def test_trailing_bytes_after_a_line_do_not_change_it(line: bytes, rest: bytes) -> None:
    assert parse(line + b"\n" + rest)[0] == parse(line + b"\n")[0]


def test_owner_files() -> None:
    assert dotqmail.owner_candidates("-", "List") == (
        ".qmail-list-owner",
        ".qmail-list-owner-default",
    )


def test_header_lines() -> None:
    assert lines.dtline("joe-x", "example.org") == "Delivered-To: joe-x@example.org\n"
    assert lines.rpline("") == "Return-Path: <>\n"
    assert lines.rpline("a b@c.example") == 'Return-Path: <"a b"@c.example>\n'
    assert lines.rpline('x"y\n@h') == 'Return-Path: <"x\\"y\\_"@h>\n'
    assert lines.rpline("#@[]") == "Return-Path: <#@[]>\n"
    assert lines.rpline("a..b@c") == 'Return-Path: <"a..b"@c>\n'


def test_ext_and_host_parts() -> None:
    assert lines.ext_parts("a-b-c-d-e") == ("a-b-c-d-e", "b-c-d-e", "c-d-e", "d-e")
    assert lines.ext_parts("abc") == ("abc", "", "", "")
    assert lines.host_parts("mx.a.example.org") == ("mx.a.example", "mx.a", "mx")
    assert lines.host_parts("localhost") == ("localhost", "localhost", "localhost")
