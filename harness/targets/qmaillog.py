"""qmail-send's log on the reference target, as the scenario should see it.

qmail-send (started by qmail-start without a logger) writes its log to a file
in the work directory. The harness restarts qmail-send to read its schedule
and to jump its clock (harness.targets.qmailclock); those restarts are the
harness's doing, so what they add is taken out again: the ``status:
exiting`` of the stop and the ``status: local ...`` line a start opens with
are hidden, and since each qmail-send numbers its deliveries from 1
(qmail-send.c, masterdelid), a restarted one's numbers go on from the last
one's, as one qmail-send running throughout would have numbered them.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

STARTING = re.compile(r"^starting delivery (\d+):")
NUMBERED = re.compile(r"^(starting delivery |delivery )(\d+)(:)")
OPENING = b"status: local "


class QmailLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        self.hidden: set[int] = set()  # raw line numbers
        self.segments: list[tuple[int, int]] = []  # (first raw line of a restart, offset)

    def raw(self) -> list[bytes]:
        return [line for line in self.path.read_bytes().split(b"\n") if line]

    def _numbered(self) -> list[str]:
        lines = [line.decode("latin-1") for line in self.raw()]
        bounds = [*self.segments, (len(lines), 0)]
        for (start, offset), (end, _) in itertools.pairwise(bounds):
            lines[start:end] = [_renumber(line, offset) for line in lines[start:end]]
        return lines

    def lines(self) -> list[str]:
        """The log as the scenario sees it: renumbered, restarts' lines left out."""
        return [line for n, line in enumerate(self._numbered()) if n not in self.hidden]

    def hide_since(self, raw_count: int) -> None:
        """Hide every line written since there were ``raw_count`` (a stop's)."""
        self.hidden |= set(range(raw_count, len(self.raw())))

    def restarted_at(self, raw_count: int) -> None:
        """A restarted qmail-send began writing at raw line ``raw_count``."""
        raw = self.raw()
        if raw_count < len(raw) and raw[raw_count].startswith(OPENING):
            self.hidden.add(raw_count)
        before = self._numbered()[:raw_count]
        done = sum(1 for line in before if STARTING.match(line))
        self.segments.append((raw_count, done))


def _renumber(line: str, offset: int) -> str:
    if not offset:
        return line
    return NUMBERED.sub(lambda m: f"{m[1]}{int(m[2]) + offset}{m[3]}", line)


__all__ = ["STARTING", "QmailLog"]
