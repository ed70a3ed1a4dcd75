"""What qmail-pop3d does to a Maildir on disk: scan with sizes, commit QUIT.

Cleaning tmp/ and the scan itself (maildir.c, prioq.c) are
:mod:`server.maildirscan`'s, shared with maildir2mbox; :func:`scan` adds
getlist()'s sizes.

The clock is the runtime's; file access is real (this is a program edge).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from server import maildirscan
from server.pop3.core import Commit


def scan(maildir: Path, now: int) -> list[tuple[str, int]]:
    """maildir_scan(new, cur) then getlist(): ``[(path, size)]`` oldest first."""
    listing = []
    for _, rel in maildirscan.scan(maildir, now):
        try:
            size = (maildir / rel).stat().st_size
        except OSError:
            size = 0  # getlist(): a message gone since the scan has size 0
        listing.append((rel, size))
    return listing


def commit(maildir: Path, plan: Commit) -> int:
    """pop3_quit(): unlink the deleted, move the rest of new/ to cur/.

    Returns how many unlinks failed (each gets its own -ERR line). A failed
    rename is ignored ("if it fails, bummer").
    """
    failed = 0
    for rel in plan.unlink:
        try:
            (maildir / rel).unlink()
        except OSError:
            failed += 1
    for src, dst in plan.rename:
        with contextlib.suppress(OSError):
            os.rename(maildir / src, maildir / dst)
    return failed
