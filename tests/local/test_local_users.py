"""users/assign → users/cdb (qmail-newu.c) and the lookups of qmail-lspawn and qmail-getpw."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server import cdb
from server.local import getpw, newu, replies
from server.local.getpw import LspawnExit, Nughde, PwEntry, TablePasswd
from server.programs import ProgramContext

# qmail-users(5)'s example.
EXAMPLE = (
    b"+:alias:7790:2108:/var/qmail/alias:-::\n"
    b"+joe-:joe:507:100:/home/joe:-::\n"
    b"=joe:joe:507:100:/home/joe:::\n"
    b".\n"
)


def lookup(assign: bytes, local: str) -> Nughde | None:
    reader = cdb.Reader(cdb.build(newu.records(newu.parse(assign))))
    return getpw.cdb_lookup(reader, local)


def test_records_are_qmail_newus() -> None:
    got = newu.records(newu.parse(EXAMPLE))
    assert got == [
        (b"!", b"alias\x007790\x002108\x00/var/qmail/alias\x00-\x00"),
        (b"!joe-", b"joe\x00507\x00100\x00/home/joe\x00-\x00"),
        (b"!joe\x00", b"joe\x00507\x00100\x00/home/joe\x00\x00"),
        (b"", b"-"),
    ]


def test_example_of_qmail_users_5() -> None:
    joe = lookup(EXAMPLE, "joe")
    assert joe == Nughde(user="joe", uid=507, gid=100, home="/home/joe", dash="", ext="")
    direct = lookup(EXAMPLE, "joe-direct")
    assert direct is not None and (direct.dash, direct.ext) == ("-", "direct")
    bill = lookup(EXAMPLE, "Bill")
    assert bill is not None and (bill.user, bill.dash, bill.ext) == ("alias", "-", "Bill")


def test_lookup_is_case_insensitive_but_ext_keeps_case() -> None:
    found = lookup(EXAMPLE, "JOE-Direct")
    assert found is not None and found.user == "joe" and found.ext == "Direct"
    assert lookup(EXAMPLE, "JOE") is not None and lookup(EXAMPLE, "JOE").ext == ""  # type: ignore[union-attr]


def test_longest_wildcard_wins_and_prefix_goes_before_ext() -> None:
    assign = b"+a-:x:1:1:/h1:-:p1-:\n+a-b-:y:2:2:/h2:-:p2-:\n.\n"
    found = lookup(assign, "a-b-c")
    assert found is not None and (found.user, found.ext) == ("y", "p2-c")
    found = lookup(assign, "a-c")
    assert found is not None and (found.user, found.ext) == ("x", "p1-c")
    assert lookup(assign, "zz") is None


def test_first_assignment_for_a_local_wins() -> None:
    found = lookup(b"=a:first:1:1:/h:::\n=A:second:2:2:/h:::\n.\n", "a")
    assert found is not None and found.user == "first"


@pytest.mark.parametrize(
    "text",
    [
        b"=joe:joe:1:1:/h:::\n",  # no final dot
        b"=joe:joe:1:1:/h::\n.\n",  # five colons
        b"joe\n.\n",  # no colon
        b":joe:1:1:/h:::\n.\n",  # empty first field
        b"=jo\0e:joe:1:1:/h:::\n.\n",
        b"=joe:joe:1:1:/h:::",  # last line without newline
    ],
)
def test_bad_format(text: bytes) -> None:
    with pytest.raises(newu.AssignFormatError):
        newu.parse(text)


def test_lines_after_the_dot_are_ignored() -> None:
    assert newu.parse(b".\ngarbage\n") == []
    assert len(newu.parse(b"=a:a:1:1:/h:::\n.anything\n")) == 1


_field = st.text(st.characters(codec="latin-1", exclude_characters=":\n\0"), max_size=8)


@given(
    st.lists(
        st.tuples(st.sampled_from("=+"), st.lists(_field, min_size=7, max_size=7)),
        max_size=6,
    )
)
def test_valid_assign_files_round_trip(rows: list[tuple[str, list[str]]]) -> None:
    rows = [(k, [f or "x" if i == 0 else f for i, f in enumerate(fs)]) for k, fs in rows]
    text = "".join(k + ":".join(fs) + ":\n" for k, fs in rows) + ".\n"
    got = newu.parse(text.encode("latin-1"))
    assert [(a.wildcard, a.local.decode("latin-1")) for a in got] == [
        (k == "+", fs[0]) for k, fs in rows
    ]
    assert all(len(a.fields) == 6 for a in got)


@given(st.binary(max_size=200))
def test_assign_parser_parses_or_raises_format_error(data: bytes) -> None:
    try:
        result = newu.parse(data)
    except newu.AssignFormatError:
        return
    newu.records(result)
    # Trailing bytes after the final dot never matter.
    assert newu.parse(data + b"\nmore") == result


def test_qmail_newu_program_writes_users_cdb(ctx: ProgramContext) -> None:
    (ctx.home / "users" / "assign").write_bytes(EXAMPLE)
    code = newu.main(["qmail-newu"], {}, io.BytesIO(), io.BytesIO(), ctx)
    assert code == 0
    assert not (ctx.home / "users" / "cdb.tmp").exists()
    found = getpw.users_cdb_lookup(ctx.home, "joe-x")
    assert found is not None and found.user == "joe"


def test_a_lookup_is_remembered_until_users_cdb_changes(
    ctx: ProgramContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """getpw.users_cdb_lookup: the same address in the same users/cdb is looked
    up once; qmail-newu's new users/cdb is seen by the next delivery."""
    import time

    from server import filecache

    def newu_with(uid: int) -> None:
        (ctx.home / "users" / "assign").write_text(f"=joe:joe:{uid}:{uid}:/home/joe:::\n.\n")
        assert newu.main(["qmail-newu"], {}, io.BytesIO(), io.BytesIO(), ctx) == 0

    newu_with(1001)
    # the file looks older than filecache.RACY: its bytes are kept, not read again
    monkeypatch.setattr(filecache, "_now_ns", lambda: time.time_ns() + 10**10)
    first = getpw.users_cdb_lookup(ctx.home, "joe")
    assert first is not None and first.uid == 1001
    assert getpw.users_cdb_lookup(ctx.home, "joe") is first
    newu_with(1002)  # a new file (qmail-newu renames cdb.tmp over it)
    again = getpw.users_cdb_lookup(ctx.home, "joe")
    assert again is not None and again.uid == 1002


def test_qmail_newu_bad_format_message(ctx: ProgramContext) -> None:
    (ctx.home / "users" / "assign").write_bytes(b"=joe\n.\n")
    assert newu.main(["qmail-newu"], {}, io.BytesIO(), io.BytesIO(), ctx) == 111
    assert ctx.stderr.getvalue() == b"qmail-newu: fatal: bad format in users/assign\n"  # type: ignore[attr-defined]


def test_corrupt_users_cdb_is_trouble(tmp_path: Path) -> None:
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "cdb").write_bytes(b"short")
    with pytest.raises(LspawnExit) as info:
        getpw.users_cdb_lookup(tmp_path, "joe")
    assert info.value.code == replies.QLX_CDB


def test_missing_users_cdb_is_no_match(tmp_path: Path) -> None:
    assert getpw.users_cdb_lookup(tmp_path, "joe") is None


# --- qmail-getpw -----------------------------------------------------------


def passwd(tmp_path: Path, *entries: PwEntry) -> TablePasswd:
    owners = {e.dir: e.uid for e in entries}
    return TablePasswd(tmp_path, 1000, entries, owners=owners)


def test_getpw_finds_longest_user_prefix(tmp_path: Path) -> None:
    pw = passwd(
        tmp_path, PwEntry("joe", 501, 100, "/home/joe"), PwEntry("joe-x", 502, 100, "/home/jx")
    )
    assert getpw.getpw("Joe-X-y", pw) == Nughde(
        user="joe-x", uid=502, gid=100, home="/home/jx", dash="-", ext="y"
    )
    assert getpw.getpw("joe", pw).dash == ""


def test_getpw_skips_root_and_homes_owned_by_others(tmp_path: Path) -> None:
    entries = (PwEntry("root", 0, 0, "/root"), PwEntry("bob", 5, 5, "/home/bob"))
    pw = TablePasswd(tmp_path, 1000, entries, owners={"/root": 0, "/home/bob": 6})
    for local in ("root", "bob-x"):
        found = getpw.getpw(local, pw)
        assert (found.user, found.dash, found.ext) == ("alias", "-", local)
        assert found.home == str(tmp_path / "alias")


def test_alias_is_never_root(tmp_path: Path) -> None:
    assert TablePasswd(tmp_path, 0).alias.uid == getpw.ALIAS_FALLBACK_IDS[0]
    assert TablePasswd(tmp_path, 1234).alias.uid == 1234


def test_getpw_long_user_names_are_not_tried(tmp_path: Path) -> None:
    long = "a" * 32
    pw = passwd(tmp_path, PwEntry(long, 7, 7, "/h"))
    assert getpw.getpw(long, pw).user == "alias"


def test_qmail_getpw_program_output(ctx: ProgramContext) -> None:
    out = io.BytesIO()
    assert getpw.main(["qmail-getpw", "nosuchuser-xyz"], {}, io.BytesIO(), out, ctx) == 0
    alias = str(ctx.home / "alias")
    uid = ctx.runtime.uid
    assert out.getvalue() == f"alias\0{uid}\0{uid}\0{alias}\0-\0nosuchuser-xyz\0".encode()


def test_system_passwd_reads_pwd(tmp_path: Path) -> None:
    import pwd

    me = pwd.getpwuid(os.getuid())
    sys_pw = getpw.SystemPasswd(tmp_path, 1000)
    assert sys_pw.getpwnam(me.pw_name) == PwEntry(me.pw_name, me.pw_uid, me.pw_gid, me.pw_dir)
    assert sys_pw.getpwnam("alias") == sys_pw.alias
