"""Waiting on real processes a test started, and looking at them in /proc.

Tests import it as ``tests.procs``. A real server's work is not on any clock
of ours, so a test waits for what it can see (a file, a listener), with a
deadline, never for a fixed time.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

DEADLINE = 60.0


def until(what: str, check: Callable[[], object], deadline: float = DEADLINE) -> None:
    """Return once ``check()`` is true; AssertionError naming ``what`` after ``deadline`` s."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def uids_of(pattern: str, *more: str) -> set[int]:
    """The real uids of the processes whose command line contains ``pattern``
    (and each of ``more``: e.g. a home's path, so that another home served on
    the machine meanwhile is not counted)."""
    uids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if all(p.encode() in cmdline for p in (pattern, *more)):
            uid_line = next(x for x in status.splitlines() if x.startswith("Uid:"))
            uids.add(int(uid_line.split()[1]))
    return uids
