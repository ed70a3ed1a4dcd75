"""``python -m server [--home DIR] PROGRAM ARGS...``: run one qmail program as a process.

The generated ``HOME/bin/NAME`` scripts call :func:`exec_program` with the
home baked in, as qmail compiles ``auto_qmail`` into its binaries. This is the
only place a program meets the real process: real runtime, real environment,
real file descriptors.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from server.errors import EXIT_PERM


def exec_program(name: str, home: str, argv: list[str]) -> int:
    from server.programs import ProgramContext, read_patches, read_queue_socket, run
    from server.runtime import favour_waiting_threads, real_environ, real_runtime

    favour_waiting_threads()

    home_path = Path(home)
    fds: dict[int, BinaryIO] = {}
    for fd in (3, 4, 5):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds[fd] = os.fdopen(fd, "r+b" if fd != 3 else "rb", buffering=0, closefd=False)
    ctx = ProgramContext(
        home=home_path,
        runtime=real_runtime(),
        stderr=sys.stderr.buffer,
        patches=read_patches(home_path),
        inprocess=False,
        fds=fds,
        queue_socket=read_queue_socket(home_path),
    )
    try:
        code = _profiled(
            name,
            lambda: run(
                name, [name, *argv], real_environ(), sys.stdin.buffer, sys.stdout.buffer, ctx
            ),
        )
    finally:
        # The reader may be gone (a closed pipe); nothing is left to tell it.
        with contextlib.suppress(BrokenPipeError, ValueError):
            sys.stdout.buffer.flush()
    return code


def _profiled(name: str, program: Callable[[], int]) -> int:
    """``program()``; with $QMAILSIM_PROFILE naming a directory, under cProfile,
    its statistics written there as NAME.PID.prof when it returns (a tool for
    docs/performance.md: each process of a running home profiles itself)."""
    where = os.environ.get("QMAILSIM_PROFILE")
    if not where:
        return program()
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(program)
    finally:
        profile.dump_stats(os.path.join(where, f"{name}.{os.getpid()}.prof"))


def main(args: list[str]) -> int:
    home = os.environ.get("QMAILSIM_HOME", "/var/qmail")
    if len(args) >= 2 and args[0] == "--home":
        home, args = args[1], args[2:]
    if not args:
        sys.stderr.write("usage: python -m server [--home DIR] PROGRAM [ARGS...]\n")
        return EXIT_PERM
    return exec_program(args[0], home, args[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
