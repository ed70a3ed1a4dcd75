"""``bin/splogger [tag [facility]]``: qmail's log lines into syslog (splogger.c).

Each input line becomes one syslog message ``<seconds>.<microseconds> <line>``
at LOG_INFO, or LOG_WARNING for ``warning:`` lines and LOG_ALERT for
``alert:`` lines. Bytes outside 32..126 become ``?``. A line longer than 799
bytes is cut into pieces; each continuation is sent as ``<stamp>+<piece>``
with the first piece's stamp and priority. The tag defaults to ``splogger``
and the facility to LOG_MAIL; a numeric facility argument is shifted left 3
as splogger.c does.
"""

from __future__ import annotations

import syslog
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

from server.programs import ProgramContext

BUF = 800  # splogger.c: "syslog truncates long lines (or crashes)"


@dataclass
class Splogger:
    """The byte-at-a-time state of splogger.c; ``feed`` returns (priority, message)s."""

    buf: bytearray | None = None
    cont: bool = False
    priority: int = syslog.LOG_INFO
    stamp: str = ""

    def feed(self, data: bytes, now: float) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        buf = self.buf if self.buf is not None else bytearray()
        for ch in data:
            if ch == 0x0A:
                self._flush(buf, now, out)
                self.cont = False
                continue
            if len(buf) == BUF - 1:
                self._flush(buf, now, out)
            buf.append(ch if 32 <= ch <= 126 else ord("?"))
        self.buf = buf
        return out

    def _flush(self, buf: bytearray, now: float, out: list[tuple[int, str]]) -> None:
        if buf:
            text = buf.decode("ascii")
            if self.cont:
                out.append((self.priority, f"{self.stamp}+{text}"))
            else:
                seconds = int(now)
                self.stamp = f"{seconds}.{int((now - seconds) * 1_000_000):06d}"
                self.priority = syslog.LOG_INFO
                if text.startswith("warning:"):
                    self.priority = syslog.LOG_WARNING
                if text.startswith("alert:"):
                    self.priority = syslog.LOG_ALERT
                out.append((self.priority, f"{self.stamp} {text}"))
                self.cont = True
        buf.clear()


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    tag = argv[1] if len(argv) > 1 else "splogger"
    facility = syslog.LOG_MAIL
    if len(argv) > 2:
        digits = len(argv[2]) - len(argv[2].lstrip("0123456789"))
        facility = (int(argv[2][:digits]) if digits else 0) << 3
    syslog.openlog(tag, 0, facility)
    state = Splogger()
    while True:
        chunk = stdin.read1(4096) if hasattr(stdin, "read1") else stdin.read(4096)
        if not chunk:
            return 0
        for priority, message in state.feed(chunk, ctx.runtime.clock.now()):
            syslog.syslog(priority, message)
