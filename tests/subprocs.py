"""Servers a test starts as real processes: their first line, and stopping them.

Tests import it as ``tests.subprocs`` (the repository root is on pytest's
``pythonpath``). SIGTERM first, SIGKILL when it does not go within
``timeout`` seconds, then the pipes are closed so no ResourceWarning is left.
:func:`first_line` waits a while for the line a server prints once it listens.
"""

from __future__ import annotations

import select
import subprocess
from typing import Any


def stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def first_line(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bytes:
    """The first line of the server's stdout, within ``timeout`` seconds of real time."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError("the server did not say it was listening")
    return proc.stdout.readline()
