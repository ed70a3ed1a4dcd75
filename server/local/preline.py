"""preline [ -frdFRD ] cmd [ arg ... ] (preline.c, preline(1)).

Feed ``cmd`` the message preceded by ``$UFLINE``, ``$RPLINE`` and ``$DTLINE``
(each can be left out with ``-f``, ``-r``, ``-d``; the capital letters put it
back), for programs that expect an mbox-style message; exit with its code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from server.inject.getopt import Getopt, GetoptError
from server.local import replies
from server.local.tools import Die, exec_child, handles_die, read_all, sys_text
from server.programs import ProgramContext

FATAL = "preline: fatal: "
USAGE = "preline: usage: preline cmd [ arg ... ]"


def _options(argv: list[str]) -> tuple[dict[str, bool], list[str]]:
    """getopt "frdFRD"; sgetopt's complaint about a bad option precedes the usage."""
    flags = {"f": True, "r": True, "d": True}
    options = Getopt(argv, "frdFRD")
    try:
        for letter, _ in options:
            flags[letter.lower()] = letter.isupper()
    except GetoptError as exc:
        raise Die(100, f"{exc}\n{USAGE}") from exc
    args = options.rest
    if not args:
        raise Die(100, USAGE)
    return flags, args


@handles_die
def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    lines = [env.get("UFLINE"), env.get("RPLINE"), env.get("DTLINE")]
    if any(line is None for line in lines):
        raise Die(100, USAGE)
    flags, args = _options(argv)
    head = "".join(line or "" for line, key in zip(lines, "frd", strict=True) if flags[key]).encode(
        "latin-1", "replace"
    )
    message = read_all(stdin, FATAL)
    try:
        code = exec_child(args, env, head + message, stdout)
    except OSError as exc:
        err = exc.errno or 0
        text = sys_text(f"{FATAL}unable to run {args[0]}: ", err)
        raise Die(111 if replies.error_temp(err) else 100, text) from exc
    if code is None:
        raise Die(111, FATAL + "child crashed")
    return code
