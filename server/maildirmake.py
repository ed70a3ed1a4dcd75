"""maildirmake DIR: make a new, empty Maildir (maildirmake.c, maildirmake(1)).

qmail's program sets umask 077 and makes ``DIR``, ``DIR/tmp``, ``DIR/new`` and
``DIR/cur`` with mode 0700; it refuses a directory that already exists. We
do not touch the process umask (the harness runs programs in-process and the
umask is process-wide); we chmod each new directory to 0700 instead, which
gives the same modes. Errors are qmail's strerr lines with error_str's texts
(:func:`error_str`): ``maildirmake: fatal: unable to mkdir DIR: file already
exists`` and exit 111; no argument is exit 100 with the usage line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import BinaryIO

from server import strerr
from server.errors import EXIT_OK, EXIT_PERM, EXIT_TEMP
from server.programs import ProgramContext
from server.strerr import error_str as error_str  # server/send/qread.py imports it from here

FATAL = "maildirmake: fatal: "
USAGE = "maildirmake: usage: maildirmake name"
MODE = 0o700


def make_maildir(path: str, cwd: str | None = None) -> str | None:
    """Make the Maildir; None on success, else qmail's one-line fatal message.

    A relative ``path`` is taken from ``cwd`` (an in-process program's current
    directory, :attr:`ProgramContext.cwd`) when given; messages show ``path``
    as the user wrote it, as qmail's do.
    """
    base = os.path.join(cwd, path) if cwd is not None else path
    steps = [(base, path)]
    steps += [(os.path.join(base, sub), f"{path}/{sub}") for sub in ("tmp", "new", "cur")]
    for target, shown in steps:
        try:
            os.mkdir(target, MODE)
            os.chmod(target, MODE)
        except OSError as exc:
            return f"{FATAL}unable to mkdir {shown}: {error_str(exc.errno)}"
    return None


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if len(argv) < 2:
        return strerr.die(ctx.stderr, EXIT_PERM, USAGE)
    failure = make_maildir(argv[1], None if ctx.cwd is None else str(ctx.cwd))
    if failure is None:
        return EXIT_OK
    return strerr.die(ctx.stderr, EXIT_TEMP, failure)
