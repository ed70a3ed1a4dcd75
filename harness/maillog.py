"""A whole qmail-send log (files an administrator has) → one message's delivery history.

``qmail-sim reproduce --log-file FILE`` reads the log as it lies on the
server: syslog via splogger, multilog's ``@4000…`` files (``current`` and
the rotated ``@….s``, or the whole directory), tai64nlocal's output, or
qmail-send's plain output; gzip'd rotated files are opened by their magic
bytes, whatever their name.
Files are read in the order given and joined, then read line by line by
:func:`harness.timeline_log.parse` (each line's stamp, continuation pieces of
splogger joined) and :func:`harness.timeline.build` (``new msg``, ``info
msg``, ``starting delivery``, results, ``bounce msg``, ``end msg``).

:func:`pick` chooses one message (``--msg N`` or ``--rcpt ADDR``; by default
the last one with a remote deferral or failure) and :func:`history` reduces it
to what a reproduction needs: one remote recipient's attempts, each with its
start and result times counted from the message's birth, and how the story
ended (success, failure, bounce after queuelifetime, or still pending).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from harness import timeline, timeline_log

GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952 section 2.3.1

Ending = Literal["success", "failure", "expired", "pending"]

#: qmail-send.c del_dochan(): a deferral of a job opened past queuelifetime
#: (flagdying) becomes a failure with this appended, as logsafe() logs it
DYING = "I'm_not_going_to_try_again;_this_message_has_been_in_the_queue_too_long./"


class HistoryError(ValueError):
    """The log holds no message that fits what was asked."""


def read_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise HistoryError(f"{path}: not a readable gzip file: {exc}") from None
    # logsafe() leaves only printable ASCII in reports; syslog may add anything else
    return data.decode("latin-1")


def log_files(path: Path) -> list[Path]:
    """A file, or a multilog directory: its rotated ``@….s`` files (their names are
    TAI64N stamps, so sorting them is sorting by time), then ``current``."""
    if not path.is_dir():
        return [path]
    rotated = sorted(p for p in path.glob("@*") if p.is_file())
    return rotated + [p for p in (path / "current",) if p.is_file()]


def read_logs(paths: Iterable[Path]) -> tuple[timeline.Timeline, bool]:
    """The timeline, and whether the lines had stamps (qmail-send's own output has none)."""
    texts = []
    for path in (f for given in paths for f in log_files(given)):
        text = read_text(path)
        texts.append(text if text.endswith("\n") or not text else text + "\n")
    whole = "".join(texts)
    timed = any(timeline_log.stamped(line) for line in whole.split("\n"))
    return timeline.build(timeline_log.parse(whole)), timed


@dataclass(frozen=True, kw_only=True)
class Try:
    """One attempt at the recipient: times in seconds from the message's birth."""

    delivery: int
    started: float
    finished: float | None
    result: str  # success, deferral, failure, mangled or pending
    report: str  # as logged (logsafe'd)

    @property
    def line(self) -> str:
        """The text a scenario's log check looks for."""
        return f"{self.result}: {self.report}"


@dataclass(frozen=True, kw_only=True)
class History:
    message: int
    recipient: str
    sender: str | None
    size: int | None
    tries: tuple[Try, ...]
    ending: Ending
    ended: float | None  # end msg (or the bounce), from birth
    bounced: float | None
    born_in_log: bool  # False: the log starts after the message was queued
    timed: bool = True  # False: the log had no stamps, every time is 0

    @property
    def first_problem(self) -> Try:
        return next(t for t in self.tries if t.result in ("deferral", "failure"))


def _has_trouble(msg: timeline.Message, rcpt: str | None) -> bool:
    return any(
        a.channel == "remote"
        and a.result in ("deferral", "failure")
        and (rcpt is None or a.recipient.lower() == rcpt)
        for a in msg.attempts
    )


def pick(tl: timeline.Timeline, *, msg: int | None = None, rcpt: str | None = None) -> int:
    """The index of the message asked for: the last that fits."""
    want = rcpt.lower() if rcpt else None
    fits = [
        i
        for i, m in enumerate(tl.messages)
        if (msg is None or m.id == msg) and _has_trouble(m, want)
    ]
    if not fits:
        what = " and ".join(
            w for w in (f"msg {msg}" if msg else "", f"recipient {rcpt}" if rcpt else "") if w
        )
        raise HistoryError(f"no remote deferral or failure in the log for {what or 'any message'}")
    return fits[-1]


def history(tl: timeline.Timeline, index: int, *, rcpt: str | None = None) -> History:
    """The history of one remote recipient of message ``index`` (the first in trouble)."""
    msg = tl.messages[index]
    want = rcpt.lower() if rcpt else None
    trouble = next(
        a
        for a in msg.attempts
        if a.channel == "remote"
        and a.result in ("deferral", "failure")
        and (want is None or a.recipient.lower() == want)
    )
    mine = [a for a in msg.attempts if a.channel == "remote" and a.recipient == trouble.recipient]
    birth = msg.queued if msg.queued is not None else mine[0].started
    tries = tuple(
        Try(
            delivery=a.delivery,
            started=a.started - birth,
            finished=None if a.finished is None else a.finished - birth,
            result=a.result,
            report=a.report,
        )
        for a in mine
    )
    bounced = msg.bounces[0].time - birth if msg.bounces else None
    last = tries[-1].result
    ending: Ending
    if last == "success":
        ending = "success"
    elif last == "failure" and tries[-1].report.endswith(DYING):
        ending = "expired"
    elif last == "failure":
        ending = "failure"
    else:
        ending = "pending"
    return History(
        message=msg.id,
        recipient=trouble.recipient,
        sender=msg.sender,
        size=msg.size,
        tries=tries,
        ending=ending,
        ended=None if msg.ended is None else msg.ended - birth,
        bounced=bounced,
        born_in_log=msg.queued is not None,
    )


def load(paths: Iterable[Path], *, msg: int | None = None, rcpt: str | None = None) -> History:
    tl, timed = read_logs(paths)
    return replace(history(tl, pick(tl, msg=msg, rcpt=rcpt), rcpt=rcpt), timed=timed)


def describe(h: History) -> list[str]:
    """The history in lines for the report."""
    out = [f"msg {h.message} to {h.recipient}: {len(h.tries)} attempt(s), ending {h.ending}"]
    if not h.timed:
        out.append("  the log has no times (qmail-send's plain output): no timing evidence")
    for t in h.tries:
        took = "" if t.finished is None else f" (result after {t.finished - t.started:.1f}s)"
        out.append(f"  +{t.started:.0f}s {t.result}{took}: {t.report[:90]}")
    if h.bounced is not None:
        out.append(f"  +{h.bounced:.0f}s bounce")
    return out
