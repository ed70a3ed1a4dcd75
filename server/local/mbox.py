"""mbox delivery as qmail-local's ``mailfile()`` does it (mbox(5)).

The file is opened for appending (created with mode 0600), locked with
``lock_ex`` (30 seconds at most), and gets, at its end:

* the ``From `` line (``UFLINE``): ``From <sender> <myctime>``;
* ``Return-Path:`` and ``Delivered-To:`` (``RPLINE``, ``DTLINE``);
* the message, where every line that matches ``>*From `` (any number of
  ``>`` then ``From ``: gfrom.c) gets one more ``>`` in front — headers and
  body alike, the first line too;
* a newline after a last line that lacks one, then one empty line.

A write failure truncates the file back to where this delivery started
(when the lock was held) and defers.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from pathlib import Path

from server.errors import TempFail
from server.fdwrite import write_all
from server.local import replies
from server.local.locking import Locker, lock_ex

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # date.weekday() order
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_GFROM = re.compile(rb">*From ")


def myctime(t: int) -> str:
    """myctime.c: ``Sun Nov 14 22:13:20 2023\\n`` in UTC, day of month two digits."""
    dt = datetime.datetime.fromtimestamp(t, datetime.UTC)
    return (
        f"{_DAYS[dt.weekday()]} {_MONTHS[dt.month - 1]} {dt.day:02d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {dt.year}\n"
    )


def ufline(sender: str, t: int) -> bytes:
    """``From <sender> <ctime>``: blanks in the sender become ``-``; ``<>`` is MAILER-DAEMON."""
    if sender:
        who = sender.translate({ord(" "): "-", ord("\t"): "-", ord("\n"): "-"})
    else:
        who = "MAILER-DAEMON"
    return f"From {who} {myctime(t)}".encode("latin-1")


def gfrom(line: bytes) -> bool:
    return _GFROM.match(line) is not None


def quote_message(message: bytes) -> bytes:
    """The message as mailfile() writes it: ``>From`` quoting, final newline, blank line."""
    lines = message.split(b"\n")
    last = lines.pop()  # b"" when the message ends with a newline
    if last:
        lines.append(last)
    out = []
    for line in lines:
        if gfrom(line):
            out.append(b">")
        out.append(line)
        out.append(b"\n")
    out.append(b"\n")
    return b"".join(out)


def deliver(
    path: str | Path, display: str, header: bytes, message: bytes, locker: Locker = lock_ex
) -> None:
    """Append to the mbox at ``path`` (``display`` is the name as the .qmail wrote it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise TempFail(replies.open_mbox_failed(display, exc.errno or 0)) from exc
    try:
        locked = locker(fd)
        pos = os.lseek(fd, 0, os.SEEK_END)
        try:
            write_all(fd, header + quote_message(message))
            os.fsync(fd)
        except OSError as exc:
            if locked:
                _truncate(fd, pos)
            raise TempFail(replies.write_mbox_failed(display, exc.errno or 0)) from exc
    finally:
        os.close(fd)


def _truncate(fd: int, pos: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, pos)
