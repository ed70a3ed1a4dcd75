"""``.qmail`` files: which one applies, and what each of its lines asks for.

The search (qmail-local.c ``qmesearch``, dot-qmail(5)): with ``dash`` and
extension ``ext``, try ``.qmail<dash><ext>`` first, then ``-default`` files
from the longest prefix ending in ``-`` down to ``.qmail<dash>default``::

    "-" "a-b-c": .qmail-a-b-c .qmail-a-b-default .qmail-a-default .qmail-default

The extension is lowered and ``.`` becomes ``:`` (``safeext``) so that a
file name never holds a dot from the address. When a ``default`` file is
used, ``$DEFAULT`` is the part of the (unlowered) extension it stood for.

The lines (qmail-local.c main loop): trailing blanks and tabs are dropped; a
line is a comment (``#``), a file (``.`` or ``/``: a Maildir when it ends in
``/``, else an mbox), a program (``|``), ``+list`` (netqmail: forward-only),
a blank line (an error only when it is the first), or a forward (``&address``
or anything else). :func:`parse` is pure: bytes in, instructions out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Kind = Literal["blank", "comment", "maildir", "mbox", "program", "forward", "list"]


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """One line of a ``.qmail`` file; ``arg`` is the path, command or address."""

    kind: Kind
    arg: bytes = b""
    first: bool = False  # whether this is the file's first line

    def __post_init__(self) -> None:
        if b"\n" in self.arg:
            raise ValueError("a .qmail instruction is one line")


def safe_ext(ext: str) -> str:
    """``safeext``: the extension lowered (ASCII only, case_lowerb) with ``.`` as ``:``."""
    lowered = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in ext)
    return lowered.replace(".", ":")


@dataclass(frozen=True)
class Candidate:
    """A ``.qmail`` file name to try; ``default_from`` is where $DEFAULT starts in ext."""

    name: str
    default_from: int | None


def candidates(dash: str, ext: str) -> Iterator[Candidate]:
    """The file names qmesearch tries, in order."""
    safe = safe_ext(ext)
    exact = f".qmail{dash}{safe}"
    default_from = None
    # An exact file whose name ends in "default" still sets $DEFAULT.
    if len(safe) >= 7 and safe.endswith("default") and len(safe) - 7 <= len(ext):
        default_from = len(safe) - 7
    yield Candidate(exact, default_from)
    for i in range(len(safe), -1, -1):
        if i == 0 or safe[i - 1] == "-":
            yield Candidate(f".qmail{dash}{safe[:i]}default", i if i <= len(ext) else None)


def owner_candidates(dash: str, ext: str) -> tuple[str, str]:
    """``qmeox``: the ``-owner`` and ``-owner-default`` files for sender rewriting."""
    base = f".qmail{dash}{safe_ext(ext)}"
    return f"{base}-owner", f"{base}-owner-default"


def _kind(line: bytes) -> Kind:
    if not line or line[:1] == b"\0":
        return "blank"
    first = line[:1]
    if first == b"#":
        return "comment"
    if first in (b".", b"/"):
        return "maildir" if line.endswith(b"/") else "mbox"
    if first == b"|":
        return "program"
    if first == b"+":
        return "list"
    return "forward"


def parse_line(line: bytes, *, first: bool = False) -> Instruction:
    """One line without its newline; trailing spaces and tabs do not count."""
    line = line.rstrip(b" \t")
    kind = _kind(line)
    # qmail-local decides the kind on the whole line (the Maildir test looks
    # at its last byte) but then uses it as a C string, which ends at a NUL.
    line = line.split(b"\0", 1)[0]
    if kind == "program":
        return Instruction(kind=kind, arg=line[1:], first=first)
    if kind == "forward" and line.startswith(b"&"):
        return Instruction(kind=kind, arg=line[1:], first=first)
    if kind == "list":
        return Instruction(kind=kind, arg=line[1:], first=first)
    return Instruction(kind=kind, arg=line, first=first)


def parse(text: bytes) -> list[Instruction]:
    """Every line of a ``.qmail`` file (a missing final newline is supplied)."""
    if not text.endswith(b"\n"):
        text += b"\n"
    lines = text.split(b"\n")[:-1]
    return [parse_line(line, first=(n == 0)) for n, line in enumerate(lines)]


def is_forward_only_marker(instr: Instruction) -> bool:
    """``+list`` makes the rest forward-only (netqmail's qmail-local.c)."""
    return instr.kind == "list" and instr.arg == b"list"
