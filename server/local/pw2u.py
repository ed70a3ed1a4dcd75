"""qmail-pw2u: turn a passwd file into users/assign lines (qmail-pw2u.c, qmail-pw2u(8)).

``qmail-pw2u [ -/ohHuUC ] [ -c break ] < passwd > assign``. For each account
(``user:pw:uid:gid:gecos:home:shell``; a line with a NUL or too few colons is
skipped) with a non-zero uid, no capital letters (unless ``-u``), listed in
``users/include`` if that exists and not listed in ``users/exclude``, and a
home that exists and belongs to it (``-o``, the default; ``-h`` stops at a
missing home; ``-H`` does not look): for each of its mail names
(``users/mailnames``, ``user:name1:name2``, else the user name) print
``=name:user:uid:gid:home:::`` and ``+name-:user:uid:gid:home:-::``. The
``alias`` account also gets ``+:alias:uid:gid:home:-::``, and there must be
one. Then ``users/subusers`` (``sub:user:pre:``) and ``users/append`` (copied
as they are), and the final ``.``.

The lists are read with control_readfile's rules and looked up as constmap
does: case-insensitively, a later entry winning over an earlier one.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from server.control import ControlDir
from server.errors import TempFail
from server.inject.getopt import Getopt, GetoptError
from server.local.getpw import ALIAS_USER, BREAK, lower
from server.programs import ProgramContext
from server.scan import scan_ulong

PREFIX = "qmail-pw2u: fatal: "


class Pw2uError(Exception):
    """A fatal error; the text is printed as it is, exit 111."""


@dataclass
class Options:
    dashcolon: str = "-:"
    homestrategy: int = 2  # 2 skip missing or foreign; 1 stop at missing; 0 ignore
    noupper: bool = True
    brk: str = BREAK


@dataclass
class Lists:
    include: set[str] | None = None
    exclude: set[str] | None = None
    mailnames: dict[str, str] | None = None
    users: dict[str, str] = field(default_factory=dict)  # user -> ":user:uid:gid:home:"


def parse_options(argv: list[str], errors: list[str] | None = None) -> Options | None:
    """getopt "/ohHuUc:C"; None for an unknown option (exit 100).

    sgetopt's complaint (``qmail-pw2u: illegal option -- x``) goes into
    ``errors`` when given: qmail-pw2u prints it and then exits 100 silently.
    """
    opts = Options()
    try:
        for letter, value in Getopt(argv, "/ohHuUc:C"):
            if letter == "c":
                opts.brk = (value or "")[:1]
            else:
                _flag(opts, letter)
    except GetoptError as exc:
        if errors is not None:
            errors.append(str(exc))
        return None
    return opts


def _flag(opts: Options, ch: str) -> bool:
    if ch == "/":
        opts.dashcolon = "-/:"
    elif ch in "ohH":
        opts.homestrategy = {"o": 2, "h": 1, "H": 0}[ch]
    elif ch in "uU":
        opts.noupper = ch == "U"
    elif ch == "C":
        opts.brk = ""
    else:
        return False
    return True


def _home_owner(home: str, strategy: int) -> int | None:
    try:
        return os.stat(home).st_uid
    except OSError as exc:
        if exc.errno != errno.ENOENT or strategy == 1:
            raise Pw2uError(f"{PREFIX}unable to stat {home}\n") from exc
        return None


def account(line: str, opts: Options, lists: Lists) -> list[str]:
    """doaccount(): the assign lines for one passwd line (with its newline)."""
    fields = line.split(":")
    if "\0" in line or len(fields) < 7:
        return []
    user, uidstr, gidstr, home = fields[0], fields[2], fields[3], fields[5]
    uid = scan_ulong(uidstr)[0]
    if not uid or (opts.noupper and user != lower(user)):
        return []
    if lists.include is not None and lower(user) not in lists.include:
        return []
    if lists.exclude is not None and lower(user) in lists.exclude:
        return []
    if opts.homestrategy and _home_owner(home, opts.homestrategy) != uid:
        return []
    uugh = f":{user}:{uidstr}:{gidstr}:{home}:"
    lists.users[lower(user)] = uugh
    out = []
    if user == ALIAS_USER:
        out.append(f"+{uugh}{opts.dashcolon}:\n")
    names = (lists.mailnames or {}).get(lower(user), user)
    for name in (n for n in names.split(":") if n):
        out.append(f"={name}{uugh}::\n")
        if opts.brk:
            out.append(f"+{name}{opts.brk}{uugh}{opts.dashcolon}:\n")
    return out


def subuser(line: str, opts: Options, lists: Lists) -> list[str]:
    """dosubuser(): ``sub:user:pre:``."""
    fields = line.split(":")
    if len(fields) < 3:  # each field counts only when a colon ends it
        return []
    sub, user = fields[0], fields[1]
    uugh = lists.users.get(lower(user))
    if uugh is None:
        raise Pw2uError(f"{PREFIX}unable to find {user} user for subuser\n")
    if len(fields) < 4:
        return []
    pre = fields[2]
    out = [f"={sub}{uugh}{opts.dashcolon}{pre}:\n"]
    if opts.brk:
        out.append(f"+{sub}{opts.brk}{uugh}{opts.dashcolon}{pre}-:\n")
    return out


def read_lists(control: ControlDir) -> Lists:
    try:
        incl = control.readfile("include")
        excl = control.readfile("exclude")
        mana = control.readfile("mailnames")
    except TempFail as exc:
        raise Pw2uError(f"{PREFIX}unable to read controls\n") from exc
    mailnames = None
    if mana is not None:
        mailnames = {}
        for entry in mana:
            if ":" in entry:
                key, value = entry.split(":", 1)
                mailnames[lower(key)] = value
    return Lists(
        include=None if incl is None else {lower(x) for x in incl},
        exclude=None if excl is None else {lower(x) for x in excl},
        mailnames=mailnames,
    )


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) if text else [""]


def _optional(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("latin-1")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Pw2uError(f"{PREFIX}unable to read controls\n") from exc


def convert(passwd: str, opts: Options, users_dir: Path) -> str:
    lists = read_lists(ControlDir(users_dir))
    out = [x for line in _lines(passwd) for x in account(line, opts, lists)]
    if ALIAS_USER not in lists.users:
        raise Pw2uError(f"{PREFIX}unable to find {ALIAS_USER} user\n")
    subs = _optional(users_dir / "subusers")
    if subs is not None:
        out += [x for line in _lines(subs) for x in subuser(line, opts, lists)]
    append = _optional(users_dir / "append")
    if append is not None:
        out.append(append)
    out.append(".\n")
    return "".join(out)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    complaints: list[str] = []
    opts = parse_options(argv, complaints)
    if opts is None:
        for text in complaints:
            ctx.stderr.write(text.encode("latin-1", "replace") + b"\n")
        ctx.stderr.flush()
        return 100
    try:
        passwd = stdin.read().decode("latin-1")
        text = convert(passwd, opts, ctx.home / "users")
    except Pw2uError as exc:
        ctx.stderr.write(str(exc).encode("latin-1", "replace"))
        ctx.stderr.flush()
        return 111
    stdout.write(text.encode("latin-1", "replace"))
    stdout.flush()
    return 0
