"""Jumping a real qmail's clock: the queue-time fudge (``advance`` on ``qmail:DIR``).

A real qmail-send reads the real clock and keeps its schedule in the queue's
file times: a message's birth is its info file's mtime (qmail-send.c,
getinfo), each channel file's mtime is its next retry (pqadd, and pqfinish's
utime as qmail-send exits), and qmail-remote's tcpto table stamps each
timeout with the time it happened (tcpto.c, bytes 8 to 11 of a record).
So instead of moving qmail's clock forward, the harness moves the queue
back: :func:`age_queue` takes ``seconds`` off every one of those times, and
the messages are then exactly as old, and their retries exactly as due, as
if that much time had passed. (Exim's test suite fudges its queue times the
same way.) qmail-send rereads its schedule only as it starts (pqstart), so
the reference target stops it with TERM, ages the queue, and starts it again
(harness.targets.qmailserver); :func:`earliest_retry` reads the schedule it
left, so each jump lands on the next due retry, as the simulator's does.

Why not libfaketime: qmail-send writes the info and channel files itself, so
their times come from the kernel's clock, never from a preloaded library; a
faked clock ahead of the kernel's makes every message look older than it is
(or, frozen, makes a fresh channel file look not yet due). Ageing the files
keeps the one clock qmail-send trusts and moves only what it reads from them.

A fake peer's scripted delay is the one place a real clock must run: it is
qmail-remote's own timeout (timeoutread's select()) that a delay past
timeoutremote has to meet. In a scenario whose peers take their time, the
reference's qmail-remote alone (libfaketime, preloaded by a wrapper) runs
:data:`DILATION` times faster, so its select() waits that many times shorter,
and the peers wait out each delay in real time, shortened alike
(harness.targets.livepeers). The time the delays took in the scenario is
then jumped with the queue once qmail-send is idle, as ``advance`` does, so
a retry the wait made due is tried (harness.targets.qmailserver).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from server.send.schedule import SLEEP_FUZZ

#: every queue/ subdirectory that holds a message's files. Those with a time
#: qmail-send reads: mess/ (the atime its cleanup compares with OSSIFIED),
#: info/ (the birth), local/ and remote/ (the next retry); the others are aged
#: too so that nothing looks newer than the message it belongs to.
AGED = ("mess", "info", "local", "remote", "todo", "intd", "bounce")
CHANNELS = ("local", "remote")
#: where a message's birth is read: info/ once qmail-send has taken it in, else
#: the time it was queued (a channel file's mtime is a retry, never a birth)
BIRTH_ORDER = ("info", "mess", "intd", "todo", "bounce")
TCPTO_RECORD = 16  # tcpto.c: 16 bytes per remembered host
TCPTO_WHEN = slice(8, 12)  # the time of the last timeout, little-endian


#: how many times faster a reference's qmail-remote runs when peers take their time
DILATION = 120.0
LIBFAKETIME = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
               "/usr/local/lib/faketime/libfaketime.so.1")  # fmt: skip


def libfaketime() -> Path | None:
    """libfaketime's preload library (Debian's ``libfaketime`` package), if installed."""
    import glob

    found = [path for pattern in LIBFAKETIME for path in sorted(glob.glob(pattern))]
    return Path(found[0]) if found else None


def dilated(library: Path) -> dict[str, str]:
    """The environment that makes a program's clock run :data:`DILATION` times fast."""
    return {"LD_PRELOAD": str(library), "FAKETIME": f"+0 x{DILATION:g}"}


def _files(queue: Path, subs: tuple[str, ...]) -> list[Path]:
    return [p for sub in subs for p in (queue / sub).rglob("*") if p.is_file()]


def age_queue(home: Path, seconds: int) -> None:
    """Make everything in ``home``'s queue ``seconds`` older (younger if negative)."""
    if not seconds:
        return
    queue = home / "queue"
    for path in _files(queue, AGED):
        _older(path, seconds)
    _age_tcpto(queue / "lock" / "tcpto", seconds)


def _older(path: str | Path, seconds: int) -> None:
    """Take ``seconds`` off a file's atime and mtime (add them if negative)."""
    st = os.stat(path)
    step = seconds * 1_000_000_000
    os.utime(path, ns=(st.st_atime_ns - step, st.st_mtime_ns - step))


def age_maildirs(maildirs: list[Path], seconds: int) -> None:
    """Make the mail in ``maildirs`` ``seconds`` older, as :func:`age_queue`
    does the queue: qmail-pop3d lists a Maildir's messages oldest first by
    their mtime (maildir.c), so of two deliveries an ``advance`` apart the
    first stays first, as on the simulator, whose files carry its clock,
    even when the real clock put both in one second. Files dated on
    purpose age alike: the clock moves on past them."""
    for maildir in maildirs:
        for sub in ("tmp", "new", "cur"):
            try:
                entries = list(os.scandir(maildir / sub))
            except OSError:
                continue
            for entry in entries:
                _older(entry.path, seconds)


def catch_up(home: Path, frame: int, now: int) -> None:
    """The whole seconds from ``frame`` to ``now`` (the real times, rounded,
    of the last and this catching up) off the queue's age, message by message.

    The simulator's clock stands still between its jumps and a real qmail's
    runs on, so each message is made younger by the real time it has lived
    through since the last catching up: one already queued at ``frame`` by
    ``now - frame``; one born since (an injection or a bounce, at a real
    time in between) by ``now`` less its birth, so that it is born at the
    same instant of the scenario's clock as it is on the simulator, however
    long the harness took to get there. A message's files (mess/, info/, its
    channel files: ``AGED``) move together, so its retries stay where
    qmail-send put them; tcpto's times move with the frame."""
    queue = home / "queue"
    messages: dict[str, dict[str, Path]] = {}
    for sub in AGED:
        for path in _files(queue, (sub,)):
            messages.setdefault(path.name, {})[sub] = path
    for files in messages.values():
        born = _birth(files)
        for path in files.values():
            _older(path, max(born or frame, frame) - now)
    _age_tcpto(queue / "lock" / "tcpto", frame - now)


def _birth(files: dict[str, Path]) -> int | None:
    """A message's birth as qmail-send reads it: info/'s whole-second mtime
    (getinfo); before qmail-send has taken it in, the time it was queued.
    None for channel files alone (left by a crash): they move with the frame."""
    first = next((sub for sub in BIRTH_ORDER if sub in files), None)
    return None if first is None else int(files[first].stat().st_mtime)


def _age_tcpto(path: Path, seconds: int) -> None:
    try:
        table = bytearray(path.read_bytes())
    except FileNotFoundError:
        return
    for start in range(0, len(table) - TCPTO_RECORD + 1, TCPTO_RECORD):
        record = memoryview(table)[start : start + TCPTO_RECORD]
        when = int.from_bytes(record[TCPTO_WHEN], "little")
        if when:
            record[TCPTO_WHEN] = max(when - seconds, 1).to_bytes(4, "little")
    with open(path, "r+b") as out:  # in place: qmail's owner and mode stay
        out.write(table)


def earliest_retry(home: Path, now: float) -> float | None:
    """When qmail-send next has something to do, from the queue it left as it
    exited: ``now`` if todo/ holds a message it has not taken in yet or
    bounce/ one it has still to inject, else the earliest channel file's
    mtime; None when nothing waits."""
    queue = home / "queue"
    if untaken(home):
        return now
    retries = [p.stat().st_mtime for p in _files(queue, CHANNELS)]
    return min(retries) if retries else None


def untaken(home: Path) -> bool:
    """Whether todo/ holds a message qmail-send has not taken in yet, or
    bounce/ one it has still to inject (qmail-send.c: a failure's bounce is
    there from addbounce until injectbounce has put it in todo/)."""
    return bool(_files(home / "queue", ("todo", "bounce")))


def queue_files(home: Path) -> list[Path]:
    """Every message file in a home's queue (what a scenario leaves behind)."""
    return _files(home / "queue", AGED)


def jump_to(due: float, now: float) -> int:
    """Whole seconds to age the queue by so that a retry due at ``due`` runs:
    to ``due`` plus qmail-send's SLEEP_FUZZ, where the simulator's clock jumps."""
    return max(0, math.ceil(due + SLEEP_FUZZ - now))


__all__ = [
    "age_maildirs",
    "age_queue",
    "catch_up",
    "earliest_retry",
    "jump_to",
    "queue_files",
    "untaken",
]
