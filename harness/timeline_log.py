"""A real qmail-send log file read into ``(seconds since its first line, line)`` pairs.

``qmail-sim show --log FILE`` draws the timeline of a log an administrator
already has, with :func:`harness.timeline.build`. Each line's time comes from
whichever stamp it carries:

* multilog's TAI64N label ``@4000000065…`` (daemontools, the usual
  ``qmail-start ./Maildir/ | multilog t`` setup);
* tai64nlocal's ``2026-11-25 19:00:00.123456789`` (such a log made readable);
* splogger's ``1700000000.123456`` after the syslog prefix (splogger.c writes
  ``<seconds>.<microseconds> <line>``, and ``<stamp>+<piece>`` for each
  further piece of a line longer than its 800-byte buffer, which is joined
  back here).

A line with no stamp (qmail-send's own output, caught by a plain file) takes
the time of the line before it, 0 at first. Times only need to be right
relative to each other, so TAI's offset from UTC and the local time zone do
not matter.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime

#: TAI64 labels count from 2^62 (cr.yp.to/libtai/tai64.html)
TAI64_BASE = 2**62

_TAI64N = re.compile(r"@([0-9a-fA-F]{16})([0-9a-fA-F]{8}) ?(.*)")
_SPLOGGER = re.compile(r"(?:^|.*?: )(\d{1,20})\.(\d{6})([ +])(.*)")
_LOCAL = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d{1,9})? (.*)")


def stamped(line: str) -> tuple[int, float, str, bool] | None:
    """(seconds, fraction, text, continues the previous line) if ``line`` has a stamp.

    Whole seconds stay an int so that subtracting two of them loses nothing.
    """
    if m := _TAI64N.fullmatch(line):
        return int(m[1], 16) - TAI64_BASE, int(m[2], 16) / 1e9, m[3], False
    if m := _LOCAL.fullmatch(line):
        try:
            when = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
        fraction = float(m[2]) if m[2] else 0.0
        return calendar.timegm(when.timetuple()), fraction, m[3], False
    if m := _SPLOGGER.fullmatch(line):
        return int(m[1]), int(m[2]) / 1e6, m[4], m[3] == "+"
    return None


def parse(text: str) -> list[tuple[float, str]]:
    """Each log line with its time, counted from the first stamped line."""
    out: list[tuple[float, str]] = []
    first: tuple[int, float] | None = None
    t = 0.0
    lines = text.split("\n")  # not splitlines(): a form feed is not a new log line
    if lines[-1] == "":
        lines.pop()
    for raw in lines:
        parts = stamped(raw)
        if parts is None:
            line = raw
        else:
            seconds, fraction, line, more = parts
            first = (seconds, fraction) if first is None else first
            # qmail-send's log never runs backwards; a clock stepped back must not either
            t = max(t, (seconds - first[0]) + (fraction - first[1]))
            if more and out:
                out[-1] = (out[-1][0], out[-1][1] + line)
                continue
        out.append((t, line))
    return out
