"""Stopping a server a test started as a real process, and closing its pipes.

Tests import it as ``tests.subprocs`` (the repository root is on pytest's
``pythonpath``). SIGTERM first, SIGKILL when it does not go within
``timeout`` seconds, then the pipes are closed so no ResourceWarning is left.
"""

from __future__ import annotations

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
