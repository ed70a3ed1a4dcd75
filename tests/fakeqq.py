"""A QMAILQUEUE script for differential tests: each queue run's message and envelope on disk.

qmail.c runs ``$QMAILQUEUE`` in place of bin/qmail-queue when it is set; the
script (a test module's text, which decides which runs to keep) writes the
message of run ``$$`` to ``$FAKEQQ_DIR/m.$$`` and its envelope to ``e.$$``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def install(base: Path, script: str) -> tuple[Path, Path]:
    """The script as ``base/fakeqq`` and an empty ``base/spool`` for it."""
    fakeqq = base / "fakeqq"
    fakeqq.write_text(script)
    fakeqq.chmod(0o755)
    spool = base / "spool"
    spool.mkdir()
    return fakeqq, spool


def spooled(spool: Path, mask: Callable[[bytes], bytes]) -> list[tuple[bytes, bytes]]:
    """(message, envelope) of each queued run, in the order of the runs' pids, the
    message through ``mask``; the spool is emptied for the next session."""
    runs = sorted(spool.glob("e.*"), key=lambda p: int(p.suffix[1:]))
    found = [(mask(p.with_name("m" + p.suffix).read_bytes()), p.read_bytes()) for p in runs]
    for p in spool.iterdir():
        p.unlink()
    return found
