"""qmail-tcpok: forget every timeout recorded in queue/lock/tcpto (qmail-tcpok.c).

It writes 1024 zero bytes under an exclusive lock. Errors are strerr lines on
stderr, ``qmail-tcpok: fatal: unable to ... HOME/queue/lock/tcpto: <error>``,
and exit 111.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from typing import BinaryIO

from server import strerr
from server.errors import EXIT_OK, EXIT_TEMP
from server.programs import ProgramContext
from server.remote.tcpto import SIZE

FATAL = "qmail-tcpok: fatal: "


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    home = str(ctx.home)

    def die(what: str, exc: OSError) -> int:
        return strerr.die_sys(ctx.stderr, EXIT_TEMP, FATAL, what, home, _tail(what), err=exc.errno)

    lockdir = ctx.home / "queue" / "lock"
    if not lockdir.is_dir():
        return die("unable to chdir to ", FileNotFoundError(2, "missing"))
    try:
        fd = os.open(lockdir / "tcpto", os.O_WRONLY)
    except OSError as exc:
        return die("unable to write ", exc)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"\0" * SIZE)
    except OSError as exc:
        return die("unable to clear ", exc)
    finally:
        os.close(fd)
    return EXIT_OK


def _tail(what: str) -> str:
    return "/queue/lock: " if what.startswith("unable to chdir") else "/queue/lock/tcpto: "
