"""forward address ... (forward.c, forward(1)): queue the message anew.

The new message is ``$DTLINE`` followed by standard input, from
``$NEWSENDER``, to the arguments. Success prints ``forward: qp N`` (on
stderr, through strerr_die with exit 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from server.local.tools import Die, handles_die, need_env, queue, read_all
from server.programs import ProgramContext

FATAL = "forward: fatal: "


@handles_die
def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    sender = need_env(env, "NEWSENDER", FATAL)
    dtline = need_env(env, "DTLINE", FATAL)
    data = dtline.encode("latin-1", "replace") + read_all(stdin, FATAL)
    qp = queue(ctx, env, FATAL, data, sender, argv[1:])
    raise Die(0, f"forward: qp {qp}")
