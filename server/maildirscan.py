"""maildir.c and prioq.c: cleaning a Maildir's tmp/ and listing its messages.

qmail-pop3d and maildir2mbox share these. maildir_clean() removes files in
``tmp/`` whose access time is more than 36 hours (129600 s) old.
maildir_scan() reads ``new/`` and then ``cur/`` in directory order, skips
names starting with "." and files whose mtime is not strictly before "now"
("don't want to mix up the order": a message delivered in the current second
is left for the next run), and orders the rest by mtime with prioq.c's binary
heap. Ties between equal mtimes come out in the order that heap gives them,
which is not always the order they were read: :class:`Prioq` is that heap,
step for step.

File access is real (the programs using this are at the edge); the clock is
the caller's ``now``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: maildir_clean(): tmp/ files unread for this long are removed (36 hours).
TMP_MAX_AGE = 129600


@dataclass
class Prioq:
    """prioq.c: a binary min-heap of (mtime, id), with qmail's sift rules."""

    items: list[tuple[int, int]] = field(default_factory=list)

    def insert(self, dt: int, ident: int) -> None:
        p = self.items
        p.append((dt, ident))
        j = len(p) - 1
        while j:
            i = (j - 1) // 2
            if p[i][0] <= dt:
                break
            p[j] = p[i]
            j = i
        p[j] = (dt, ident)

    def pop_min(self) -> tuple[int, int] | None:
        p = self.items
        if not p:
            return None
        top = p[0]
        n = len(p) - 1
        i = 0
        while True:
            j = i + i + 2
            if j > n:
                break
            if p[j - 1][0] <= p[j][0]:
                j -= 1
            if p[n][0] <= p[j][0]:
                break
            p[i] = p[j]
            i = j
        p[i] = p[n]
        p.pop()
        return top


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
    while (item := queue.pop_min()) is not None:
        listing.append((item[0], names[item[1]]))
    return listing
