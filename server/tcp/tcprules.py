"""tcprules RULES.cdb RULES.tmp < rules: compile access rules (ucspi-tcp 0.88).

Reads rules text on stdin (syntax in :mod:`server.tcp.rules`), writes the cdb
to RULES.tmp, fsyncs it and renames it to RULES.cdb, so tcpserver sees the old
rules or the new ones. As tcprules.c does, RULES.tmp is created (truncated)
before any input is read; on a parse error it is left behind and RULES.cdb is
untouched. Messages and exit codes are tcprules'.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import BinaryIO

from server import strerr
from server.cdb import build
from server.errors import EXIT_OK, EXIT_PERM, EXIT_TEMP
from server.fdwrite import write_all
from server.programs import ProgramContext
from server.tcp.rules import RulesSyntaxError, compile_rules

FATAL = "tcprules: fatal: "
USAGE = "tcprules: usage: tcprules rules.cdb rules.tmp"


def _sys(ctx: ProgramContext, what: str, exc: OSError) -> int:
    return strerr.die_sys(ctx.stderr, EXIT_TEMP, FATAL, what, ": ", err=exc.errno)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if len(argv) < 3:
        return strerr.die(ctx.stderr, EXIT_PERM, USAGE)
    target, tmp = argv[1], argv[2]
    target_path, tmp_path = ctx.path(target), ctx.path(tmp)  # an in-process program's cwd
    try:
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        return _sys(ctx, f"unable to create {tmp}", exc)
    try:
        try:
            text = stdin.read()
        except OSError as exc:
            return _sys(ctx, "unable to read input", exc)
        try:
            records = compile_rules(text)
        except RulesSyntaxError as exc:
            line = exc.line.split(b"\0")[0]
            return strerr.die(ctx.stderr, EXIT_PERM, FATAL, "unable to parse this line: ", line)
        try:
            write_all(fd, build(records))
            os.fsync(fd)
        except OSError as exc:
            return _sys(ctx, f"unable to write to {tmp}", exc)
    finally:
        os.close(fd)
    try:
        os.rename(tmp_path, target_path)
    except OSError as exc:
        return _sys(ctx, f"unable to move {tmp} to {target}", exc)
    return EXIT_OK
