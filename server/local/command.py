"""``|command`` lines: run ``/bin/sh -c command`` as qmail-local's mailprogram().

The command gets the message on its standard input (the queue file itself
when we have it, so it can seek, as qmail gives it fd 0), the environment of
qmail-command(8), the user's home as its current directory, umask 077, and
its standard output and error go into qmail-local's report.

Its exit code means (qmail-local.c mailprogram(), qmail-command(8)):

* 0 — success, go on with the next line;
* 99 — success, and ignore the rest of the ``.qmail`` file;
* 100 and 64, 65, 70, 76, 77, 78, 112 — permanent failure (bounce);
* anything else — temporary failure (retry later);
* killed by a signal — "Aack, child crashed. (#4.3.0)", temporary.

qmail itself puts no time limit on a command. We add one (injected; the
caller chooses it) and treat a command that outlives it as one that was
killed: its process group gets SIGKILL and the delivery is deferred with
the crashed-child text.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from server.local import replies
from server.runtime import StrPath

#: mailprogram(): the exit codes qmail-local turns into a permanent failure.
PERMANENT_CODES = frozenset({100, 64, 65, 70, 76, 77, 78, 112})
SKIP_CODE = 99


@dataclass(frozen=True, kw_only=True)
class ProgramResult:
    """How a command ended: ``exit_code`` None means killed (crashed or timed out)."""

    exit_code: int | None
    output: bytes
    timed_out: bool = False


def outcome(exit_code: int | None) -> str:
    """``ok``, ``skip``, ``perm``, ``temp`` or ``crashed`` for an exit code."""
    if exit_code is None:
        return "crashed"
    if exit_code == 0:
        return "ok"
    if exit_code == SKIP_CODE:
        return "skip"
    if exit_code in PERMANENT_CODES:
        return "perm"
    return "temp"


def run(
    command: bytes,
    *,
    env: Mapping[str, str],
    cwd: str | Path,
    message: bytes,
    message_path: StrPath | None = None,
    message_fd: int | None = None,
    timeout: float | None = None,
    outputs: tuple[int, int] | None = None,
) -> ProgramResult:
    """Run one command; OSError when /bin/sh cannot be started at all.

    The command reads the queue file itself when we have it: ``message_fd``
    (our own seekable stdin, rewound as qmail-local's seek_begin(0) does) or
    ``message_path``; else the bytes come through a pipe. With ``outputs``
    (two fds) the command writes its stdout and stderr there itself, as a
    child of qmail-local inherits fds 1 and 2; else both are captured as one
    stream in the result.
    """
    stdin_file = open(message_path, "rb") if message_path is not None else None  # noqa: SIM115
    source: int | BinaryIO | None = stdin_file
    if message_fd is not None:
        os.lseek(message_fd, 0, os.SEEK_SET)
        source = message_fd
    try:
        proc = subprocess.Popen(
            [b"/bin/sh", b"-c", command],
            stdin=source if source is not None else subprocess.PIPE,
            stdout=subprocess.PIPE if outputs is None else outputs[0],
            stderr=subprocess.STDOUT if outputs is None else outputs[1],
            cwd=cwd,
            env=dict(env),
            umask=0o077,
            start_new_session=True,
        )
    finally:
        if stdin_file is not None:
            stdin_file.close()
    with proc:
        return _wait(proc, None if source is not None else message, timeout)


def _wait(
    proc: subprocess.Popen[bytes], data: bytes | None, timeout: float | None
) -> ProgramResult:
    try:
        output, _ = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        output, _ = proc.communicate()
        return ProgramResult(exit_code=None, output=output or b"", timed_out=True)
    code = proc.returncode
    return ProgramResult(exit_code=code if code >= 0 else None, output=output or b"")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def failure_text_for_start(err: int) -> str:
    return replies.run_sh_failed(err)
