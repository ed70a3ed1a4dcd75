"""predate: run a program with a ``Date:`` line in local time put before its input.

``predate CHILD [ARGS...]`` (predate.c, used by datemail): CHILD reads
``Date: <local time> +HHMM`` and then predate's own stdin, and predate
exits with CHILD's exit code (111 with ``predate: fatal: child crashed``
when a signal killed it). Local time is the zone ``TZ`` names in the
environment, as libc's localtime() takes it (GMT without one); the offset
is written as the date-localtime patch writes it (see server.date822).

In-process CHILD is one of our programs (its base name); otherwise a real
process on a pipe.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from server import programs, strerr
from server.date822 import date822fmt, zone_of
from server.errors import EXIT_PERM, EXIT_TEMP

FATAL = b"predate: fatal: "


def date_line(t: int, env: Mapping[str, str], home: Path | None = None) -> bytes:
    return b"Date: " + date822fmt(t, localtime=True, tz=zone_of(env, home)).encode() + b"\n"


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: programs.ProgramContext,
) -> int:
    if len(argv) < 2:
        return strerr.die(ctx.stderr, EXIT_PERM, "predate: usage: predate child")
    data = date_line(ctx.runtime.now(), env, ctx.home) + stdin.read()
    child = argv[1:]
    if ctx.inprocess:
        name = os.path.basename(child[0])
        if not programs.is_ours(name):
            return strerr.die(
                ctx.stderr, EXIT_TEMP, FATAL, "unable to run ", child[0], ": not one of ours"
            )
        with BytesIO(data) as piped:
            return programs.run(name, child, env, piped, stdout, ctx)
    stdout.flush()
    try:
        done = subprocess.run(child, input=data, env=dict(env), check=False)
    except OSError as exc:
        return strerr.die_sys(
            ctx.stderr, EXIT_TEMP, FATAL, "unable to run ", child[0], ": ", err=exc.errno
        )
    if done.returncode < 0:
        return strerr.die(ctx.stderr, EXIT_TEMP, FATAL, "child crashed")
    return done.returncode
