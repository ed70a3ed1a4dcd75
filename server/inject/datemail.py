"""datemail: ``predate sendmail ARGS...`` (datemail.sh): sendmail with a local-time Date:."""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from server.inject import predate
from server.programs import ProgramContext


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    sendmail = str(ctx.home / "bin" / "sendmail")
    return predate.main(["predate", sendmail, *argv[1:]], env, stdin, stdout, ctx)
