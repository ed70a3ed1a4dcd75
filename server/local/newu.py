"""qmail-newu: compile ``users/assign`` into ``users/cdb`` (qmail-newu.c).

``users/assign`` (qmail-users(5)) is a series of lines ending with a line
that starts with ``.``; a line is ``=local:user:uid:gid:home:dash:ext:`` or
``+prefix:user:uid:gid:home:dash:pre:``. For each line qmail-newu stores:

* key ``!`` + lowered local + NUL for ``=`` (any first character but ``+``
  counts as ``=``), or ``!`` + lowered prefix for ``+``;
* data: the six fields after the first colon, the colons turned into NULs,
  cut just before the sixth colon (so no trailing NUL);
* and finally the empty key holding the "wildchars": the distinct last
  characters of the ``+`` prefixes, in order of first appearance.

A missing final ``.`` line, a line without a newline, a NUL, no colon, an
empty first field or fewer than six colons after it is "bad format".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from server import cdb
from server.local import replies
from server.local.getpw import lower
from server.programs import ProgramContext


class AssignFormatError(ValueError):
    """users/assign breaks qmail-newu's rules; ``lineno`` counts from 1."""

    def __init__(self, lineno: int, why: str) -> None:
        super().__init__(f"users/assign line {lineno}: {why}")
        self.lineno = lineno
        self.why = why


@dataclass(frozen=True, kw_only=True)
class Assignment:
    """One line of users/assign as qmail-newu stores it."""

    wildcard: bool
    local: bytes  # the local part or prefix as written (not lowered)
    fields: tuple[bytes, ...]  # user, uid, gid, home, dash, ext/pre

    def key(self) -> bytes:
        lowered = lower(self.local.decode("latin-1")).encode("latin-1")
        return b"!" + lowered + (b"" if self.wildcard else b"\0")

    def data(self) -> bytes:
        return b"\0".join(self.fields)


def parse_line(line: bytes, lineno: int = 1) -> Assignment:
    """One line without its newline."""
    if b"\0" in line:
        raise AssignFormatError(lineno, "NUL in line")
    colon = line.find(b":")
    if colon <= 0:
        raise AssignFormatError(lineno, "no colon" if colon < 0 else "empty first field")
    parts = line[colon + 1 :].split(b":")
    if len(parts) < 7:
        raise AssignFormatError(lineno, "fewer than six fields after the address")
    return Assignment(wildcard=line[:1] == b"+", local=line[1:colon], fields=tuple(parts[:6]))


def parse(text: bytes) -> list[Assignment]:
    """Every assignment before the ``.`` line; AssignFormatError otherwise."""
    assignments: list[Assignment] = []
    pos = 0
    lineno = 0
    while True:
        lineno += 1
        end = text.find(b"\n", pos)
        line = text[pos:] if end < 0 else text[pos:end]
        if line.startswith(b"."):
            return assignments
        if end < 0:
            raise AssignFormatError(lineno, "no final '.' line")
        assignments.append(parse_line(line, lineno))
        pos = end + 1


def wildchars(assignments: list[Assignment]) -> bytes:
    chars = bytearray()
    for a in assignments:
        if a.wildcard and a.local:
            last = a.local[-1]
            if last not in chars:
                chars.append(last)
    return bytes(chars)


def records(assignments: list[Assignment]) -> list[tuple[bytes, bytes]]:
    """users/cdb's records in qmail-newu's order (the wildchars record last)."""
    items = [(a.key(), a.data()) for a in assignments]
    items.append((b"", wildchars(assignments)))
    return items


def build(home: Path) -> None:
    """Compile HOME/users/assign into HOME/users/cdb (tmp, fsync, rename)."""
    users = Path(home) / "users"
    items = records(parse((users / "assign").read_bytes()))
    cdb.write(users / "cdb", items, users / "cdb.tmp")


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    users = ctx.home / "users"
    try:
        text = (users / "assign").read_bytes()
    except OSError:
        return _die(ctx, replies.NEWU_OPENA)
    # qmail-newu.c opens (truncates) users/cdb.tmp before it reads a line, so
    # a bad users/assign leaves an empty cdb.tmp behind and an unwritable
    # users/ is reported before a format error.
    try:
        os.close(os.open(users / "cdb.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    except OSError:
        return _die(ctx, replies.NEWU_OPENT)
    try:
        items = records(parse(text))
    except AssignFormatError:
        return _die(ctx, replies.NEWU_FORMAT)
    try:
        cdb.write(users / "cdb", items, users / "cdb.tmp")
    except OSError:
        return _die(ctx, replies.NEWU_WRITET)
    return 0


def _die(ctx: ProgramContext, text: str) -> int:
    ctx.stderr.write(text.encode())
    ctx.stderr.flush()
    return 111
