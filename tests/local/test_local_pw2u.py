"""qmail-pw2u: passwd lines to users/assign (qmail-pw2u.c)."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from server.local import newu, pw2u
from server.local.pw2u import Lists, Options, account
from server.programs import ProgramContext


def passwd_for(tmp_path: Path) -> str:
    homes = {}
    for name in ("alias", "joe", "Big"):
        home = tmp_path / name
        home.mkdir()
        homes[name] = home
    return "".join(f"{name}:x:7:7:gecos:{homes[name]}:/bin/sh\n" for name in homes)


def test_accounts_become_exact_and_wildcard_lines(tmp_path: Path) -> None:
    lists = Lists()
    line = f"joe:x:507:100:Joe:{tmp_path}:/bin/sh\n"
    got = account(line, Options(homestrategy=0), lists)
    home = str(tmp_path)
    assert got == [f"=joe:joe:507:100:{home}:::\n", f"+joe-:joe:507:100:{home}:-::\n"]
    alias = account(
        f"alias:x:7790:2108::{home}:\n", Options(homestrategy=0, dashcolon="-/:"), lists
    )
    assert alias[0] == f"+:alias:7790:2108:{home}:-/::\n"


def test_skipped_accounts(tmp_path: Path) -> None:
    opts = Options(homestrategy=0)
    assert account("root:x:0:0::/root:/bin/sh\n", opts, Lists()) == []
    assert account("Joe:x:5:5::/h:/bin/sh\n", opts, Lists()) == []
    assert account("joe:x:5:5::/h\n", opts, Lists()) == []  # no shell field
    assert account("joe:x:5:5::/h:/bin/sh\n", opts, Lists(include={"bob"})) == []
    assert account("joe:x:5:5::/h:/bin/sh\n", opts, Lists(exclude={"JOE".lower()})) == []
    # -o: a missing home is skipped
    assert account(f"joe:x:5:5::{tmp_path / 'no'}:/bin/sh\n", Options(), Lists()) == []


def test_mailnames_and_no_break(tmp_path: Path) -> None:
    lists = Lists(mailnames={"joe": "joe.smith:js"})
    got = account("joe:x:5:5::/h:/bin/sh\n", Options(homestrategy=0, brk=""), lists)
    assert got == ["=joe.smith:joe:5:5:/h:::\n", "=js:joe:5:5:/h:::\n"]


def test_program_with_subusers_and_append(ctx: ProgramContext, tmp_path: Path) -> None:
    users = ctx.home / "users"
    (users / "subusers").write_text("sub:joe:pre:\n")
    (users / "append").write_text("=extra:joe:1:1:/x:::\n")
    (users / "exclude").write_text("# nobody\nbig\n")
    out = io.BytesIO()
    stdin = io.BytesIO(passwd_for(tmp_path).encode())
    assert pw2u.main(["qmail-pw2u", "-uH"], {}, stdin, out, ctx) == 0, ctx.stderr.getvalue()  # type: ignore[attr-defined]
    text = out.getvalue().decode()
    lines = text.splitlines()
    assert lines[0].startswith("+:alias:")
    assert any(line.startswith("=joe:joe:") for line in lines)
    assert not any("Big" in line for line in lines)
    assert lines[-4].startswith("=sub:joe:") and lines[-4].endswith(":-:pre:")
    assert lines[-3].startswith("+sub-:joe:") and lines[-3].endswith(":-:pre-:")
    assert lines[-2] == "=extra:joe:1:1:/x:::" and lines[-1] == "."
    (users / "assign").write_text(text)
    newu.build(ctx.home)  # what pw2u writes, newu accepts


def test_missing_alias_is_fatal(ctx: ProgramContext) -> None:
    stdin = io.BytesIO(b"joe:x:5:5::/h:/bin/sh\n")
    assert pw2u.main(["qmail-pw2u", "-H"], {}, stdin, io.BytesIO(), ctx) == 111
    assert ctx.stderr.getvalue() == b"qmail-pw2u: fatal: unable to find alias user\n"  # type: ignore[attr-defined]


def test_unknown_option() -> None:
    assert pw2u.parse_options(["qmail-pw2u", "-x"]) is None
    opts = pw2u.parse_options(["qmail-pw2u", "-/hc", "+"])
    assert opts == Options(dashcolon="-/:", homestrategy=1, brk="+")


@given(st.text(st.characters(codec="latin-1"), max_size=80))
def test_any_line_gives_lines_that_newu_accepts(line: str) -> None:
    got = account(line.replace("\n", "") + "\n", Options(homestrategy=0), Lists())
    text = "".join(got) + ".\n"
    try:
        newu.parse(text.encode("latin-1"))
    except newu.AssignFormatError:
        # Only a field holding the separators can break the format.
        assert any(c in line for c in "\0")
