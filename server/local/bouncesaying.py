"""bouncesaying error [ program [ arg ... ] ] (bouncesaying.c, bouncesaying(1)).

Without a program: bounce with ``error``. With one: run it; exit 0 from it
means bounce, 111 is a temporary failure, anything else means "accept" (exit
0 without bouncing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from server.local.tools import Die, child_verdict, handles_die, read_all, run_child
from server.programs import ProgramContext

FATAL = "bouncesaying: fatal: "
USAGE = "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]"


@handles_die
def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if len(argv) < 2:
        raise Die(100, USAGE)
    if len(argv) > 2:
        code = run_child(argv[2:], env, read_all(stdin, FATAL), stdout)
        if child_verdict(FATAL, code) is None:
            return 0
    raise Die(100, argv[1])
