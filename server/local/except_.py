"""except program [ arg ... ] (except.c, except(1)): turn a success into a bounce.

The program's exit 0 becomes 100, 111 stays a temporary failure, anything
else becomes 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from server.local.tools import Die, child_verdict, handles_die, read_all, run_child
from server.programs import ProgramContext

FATAL = "except: fatal: "
USAGE = "except: usage: except program [ arg ... ]"


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
    code = run_child(argv[1:], env, read_all(stdin, FATAL), stdout)
    return 100 if child_verdict(FATAL, code) == 0 else 0
