"""Parse one qmail-send log line about a delivery, for ``qmail-sim reproduce``.

qmail-send logs a delivery's result as ``delivery N: success|deferral|failure:
REPORT`` and its start as ``starting delivery N: msg M to local|remote ADDR``
(qmail-send.c). The report passes through ``logsafe()`` (qsutil.c): a newline
becomes ``/`` and every byte below 33, above 126 or ``%`` becomes ``_``.

A line may carry a stamp in front, read with the same rules as
:mod:`harness.timeline_log`: multilog's TAI64N ``@4000…``, tai64nlocal's
``YYYY-MM-DD HH:MM:SS.nnn``, splogger's ``seconds.micros`` (after a syslog
prefix), or none. :func:`parse` returns a :class:`LogLine` or raises
:class:`LogLineError` (a ``ValueError``) saying what it expected.

:func:`unlogsafe` undoes logsafe for humans. It cannot be exact (``_`` was a
space or an underscore, ``/`` a newline or a slash), so it guesses: ``_`` is
a space, and ``/`` is a newline at the end or before a capital letter or
``(`` — which keeps ``control/locals`` whole. The exact logged text is kept
in :attr:`LogLine.text` and is what a scenario checks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from harness.timeline import RESULT_LINE, START_LINE
from harness.timeline_log import stamped

Kind = Literal["success", "deferral", "failure", "starting"]

_NEWLINE_SLASH = re.compile(r"/(?=$|[A-Z(])")


class LogLineError(ValueError):
    """The text is not a qmail-send delivery line; ``line`` is what was given."""

    def __init__(self, message: str, line: str) -> None:
        super().__init__(f"{message}: {line[:120]!r}")
        self.line = line


@dataclass(frozen=True, kw_only=True)
class LogLine:
    """A delivery line: its kind, delivery number, and the report as logged."""

    kind: Kind
    delivery: int
    text: str  # the report (or, for "starting", the recipient) exactly as logged
    stamp: float | None = None  # seconds (TAI64N/UNIX), None when the line had none
    message: int | None = None  # "starting" lines: the message's inode number
    channel: str | None = None  # "starting" lines: local or remote

    @property
    def report(self) -> str:
        """The report made readable again (see :func:`unlogsafe`)."""
        return unlogsafe(self.text)

    @property
    def code(self) -> str | None:
        """The ``#x.y.z`` enhanced status code in the report, if any."""
        m = re.search(r"\(#(\d\.\d{1,3}\.\d{1,3})\)", self.text)
        return m[1] if m else None


def unlogsafe(text: str) -> str:
    """A best guess at the report before logsafe(): ``_`` → space, ``/`` → newline."""
    return _NEWLINE_SLASH.sub("\n", text.replace("_", " "))


def parse(line: str) -> LogLine:
    """One log line (with or without a stamp) → :class:`LogLine`."""
    raw = line.rstrip("\r\n")
    if "\n" in raw:
        raise LogLineError("more than one line", line)
    stamp: float | None = None
    stamp_parts = stamped(raw)
    body = raw
    if stamp_parts is not None:
        seconds, fraction, body, _more = stamp_parts
        stamp = seconds + fraction
    if m := RESULT_LINE.fullmatch(body):
        kind: Kind = m[2]  # type: ignore[assignment]  # the regex allows only these three
        return LogLine(kind=kind, delivery=int(m[1]), text=m[3], stamp=stamp)
    if m := START_LINE.fullmatch(body):
        return LogLine(
            kind="starting",
            delivery=int(m[1]),
            text=m[4],
            stamp=stamp,
            message=int(m[2]),
            channel=m[3],
        )
    raise LogLineError(
        "not a qmail-send delivery line (expected 'delivery N: deferral|failure|success: "
        "REPORT' or 'starting delivery N: msg M to remote ADDR')",
        line,
    )
