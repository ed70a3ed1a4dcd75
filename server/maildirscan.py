"""maildir.c and prioq.c: cleaning a Maildir's tmp/ and listing its messages.

qmail-pop3d and maildir2mbox share these. maildir_clean() removes files in
``tmp/`` whose access time is more than 36 hours (129600 s) old.
maildir_scan() reads ``new/`` and then ``cur/`` in directory order, skips
names starting with "." and files whose mtime is not strictly before "now"
("don't want to mix up the order": a message delivered in the current second
is left for the next run), and orders the rest by mtime with prioq.c's binary
heap. Ties between equal mtimes come out in the order that heap gives them,
which is not always the order they were read: qmail-send's
:class:`server.send.prioq.Prioq` is that heap, step for step.

File access is real (the programs using this are at the edge); the clock is
the caller's ``now``.
"""

from __future__ import annotations

import os
from pathlib import Path

from server.send.prioq import Prioq

#: maildir_clean(): tmp/ files unread for this long are removed (36 hours).
TMP_MAX_AGE = 129600


class ScanError(Exception):
    """maildir_scan() could not read new/ or cur/."""

    def __init__(self, subdir: str, error: OSError) -> None:
        super().__init__(f"unable to scan $MAILDIR/{subdir}: {error.strerror}")
        self.subdir = subdir
        self.error = error


def clean_tmp(maildir: Path, now: int) -> list[str]:
    """maildir_clean(): unlink old tmp/ files; return the names removed."""
    try:
        names = os.listdir(maildir / "tmp")
    except OSError:
        return []
    removed = []
    for name in names:
        if name.startswith("."):
            continue
        path = maildir / "tmp" / name
        try:
            if now > int(path.stat().st_atime) + TMP_MAX_AGE:
                path.unlink()
                removed.append(name)
        except OSError:
            continue
    return removed


def scan(
    maildir: Path, now: int, subdirs: tuple[str, ...] = ("new", "cur")
) -> list[tuple[int, str]]:
    """maildir_scan(new, cur): ``[(mtime, "new/name" or "cur/name")]`` in prioq order.

    ``subdirs`` are the flags: maildirwatch scans ``new/`` alone."""
    names: list[str] = []
    queue = Prioq()
    for subdir in subdirs:
        try:
            entries = os.listdir(maildir / subdir)
        except OSError as exc:
            raise ScanError(subdir, exc) from exc
        for name in entries:
            if name.startswith("."):
                continue
            rel = f"{subdir}/{name}"
            try:
                mtime = int((maildir / rel).stat().st_mtime)
            except OSError:
                continue
            if mtime < now:
                queue.insert(mtime, len(names))
                names.append(rel)
    listing = []
    while (item := queue.min()) is not None:
        queue.delmin()
        listing.append((item.dt, names[item.id]))
    return listing
