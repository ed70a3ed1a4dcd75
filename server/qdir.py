"""Names inside ``HOME/queue``, as fmtqfn.c forms them.

A message is known by the inode number of its ``mess/`` file. Directories
that qmail splits (conf-split, 23 by default) hold it under ``id % 23``;
``todo/``, ``intd/`` and ``bounce/`` are flat. See qmail's INTERNALS and
hier.c for which directory is which.
"""

from __future__ import annotations

from pathlib import Path

SPLIT = 23  # conf-split
SPLIT_DIRS = ("mess", "info", "local", "remote")
FLAT_DIRS = ("todo", "intd", "bounce")
ALL_DIRS = ("pid", "intd", "todo", "bounce", *SPLIT_DIRS, "lock")


def qfn(queue: Path, sub: str, msgid: int) -> Path:
    """``queue/sub/[id % 23/]id`` — fmtqfn with the split qmail uses for ``sub``."""
    # one string, one Path: each ``/`` would parse a Path of its own
    if sub in SPLIT_DIRS:
        return Path(f"{queue}/{sub}/{msgid % SPLIT}/{msgid}")
    if sub in FLAT_DIRS:
        return Path(f"{queue}/{sub}/{msgid}")
    raise ValueError(f"no message files live in queue/{sub}")
