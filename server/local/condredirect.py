"""condredirect newaddress program [ arg ... ] (condredirect.c, condredirect(1)).

Run the program; if it exits 0, forward the message (``$DTLINE`` + message,
from ``$SENDER``) to ``newaddress`` and exit 99 so qmail-local ignores the
rest of the ``.qmail`` file; 111 is a temporary failure; anything else exits
0 and delivery goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from server.local.tools import (
    Die,
    child_verdict,
    handles_die,
    need_env,
    queue,
    read_all,
    run_child,
)
from server.programs import ProgramContext

FATAL = "condredirect: fatal: "
USAGE = "condredirect: usage: condredirect newaddress program [ arg ... ]"


@handles_die
def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if len(argv) < 3:
        raise Die(100, USAGE)
    message = read_all(stdin, FATAL)
    if child_verdict(FATAL, run_child(argv[2:], env, message, stdout)) is None:
        return 0
    sender = need_env(env, "SENDER", FATAL)
    dtline = need_env(env, "DTLINE", FATAL)
    qp = queue(ctx, env, FATAL, dtline.encode("latin-1", "replace") + message, sender, [argv[1]])
    raise Die(99, f"condredirect: qp {qp}")
