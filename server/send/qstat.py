"""``bin/qmail-qstat``: how many messages are queued (qmail-qstat.sh).

The script counts ``find queue/mess/*`` entries minus the 23 split
directories, and ``find queue/todo`` entries minus the directory itself::

    messages in queue: 3
    messages in queue but not yet preprocessed: 1
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from server.programs import ProgramContext


def _count_files(top: Path) -> int:
    count = 0
    for _dirpath, dirnames, filenames in os.walk(top):
        count += len(dirnames) + len(filenames)
    return count


def counts(queue: Path) -> tuple[int, int]:
    mess = 0
    for entry in sorted((queue / "mess").iterdir()) if (queue / "mess").is_dir() else []:
        mess += _count_files(entry) if entry.is_dir() else 0
    todo = _count_files(queue / "todo") if (queue / "todo").is_dir() else 0
    return mess, todo


def report(queue: Path) -> bytes:
    mess, todo = counts(queue)
    return (
        f"messages in queue: {mess}\nmessages in queue but not yet preprocessed: {todo}\n"
    ).encode()


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    stdout.write(report(ctx.home / "queue"))
    stdout.flush()
    return 0
