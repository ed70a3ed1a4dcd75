"""``bin/qmail-start [defaultdelivery [logger args...]]`` (qmail-start(8)).

qmail's qmail-start forks qmail-send, qmail-lspawn (given ``defaultdelivery``,
``./Mailbox`` by default), qmail-rspawn and qmail-clean, wired by pipes, and
when a logger is named runs it with qmail-send's output on its stdin. Ours
runs the same parts in one process — the spawn programs are in-process
channels and qmail-clean's two commands are direct file steps — and starts
the logger as a real child process when one is named (e.g. ``splogger
qmail``), looked up in ``PATH`` as execvp does. Without a logger the log goes
to stdout.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Mapping
from typing import IO, BinaryIO

from server.programs import ProgramContext
from server.send.program import DEFAULT_DELIVERY, EXIT_TEMP, line_writer, run_send


def _copy(src: IO[bytes], dst: BinaryIO) -> None:
    for chunk in iter(lambda: src.read1(65536), b""):  # type: ignore[attr-defined]
        dst.write(chunk)
        dst.flush()


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    default = argv[1] if len(argv) > 1 else DEFAULT_DELIVERY
    logger = argv[2:]
    if not ctx.inprocess:
        os.umask(0o077)
    if not logger:
        return run_send(ctx, env, line_writer(stdout), default_delivery=default)
    try:
        proc = subprocess.Popen(
            logger, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(env), cwd="/"
        )
    except OSError:
        return EXIT_TEMP  # qmail-start's die()
    assert proc.stdin is not None and proc.stdout is not None
    copier = threading.Thread(target=_copy, args=(proc.stdout, stdout), daemon=True)
    copier.start()
    try:
        code = run_send(ctx, env, line_writer(proc.stdin), default_delivery=default)
    finally:
        proc.stdin.close()
        proc.wait()
        copier.join()
        proc.stdout.close()
    return code
