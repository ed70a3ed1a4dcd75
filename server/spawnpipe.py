"""spawn.c: the pipe protocol qmail-lspawn and qmail-rspawn both speak to qmail-send.

qmail links the same spawn.c into both spawners, so its protocol lives here
once. The spawner first writes one byte, its concurrency limit (conf-spawn's
120, :data:`AUTO_SPAWN`). qmail-send then writes commands ``<delivery number
byte><messid>\\0<sender>\\0<recipient>\\0`` (messid relative to queue/mess),
in chunks that need not follow command boundaries (:class:`CommandParser`,
getcmd()). Each command is checked as docmd() checks it
(:func:`check_command`) and answered, in the order deliveries finish, with
``<delivery number byte><report>\\0`` (:func:`serve`); at end of input the
spawner waits for running deliveries.

The texts are spawn.c's ``err()`` reports, letter first and newline last.
"""

from __future__ import annotations

import functools
import os
import selectors
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol

#: conf-spawn: at most this many deliveries at once, and delivery numbers below it.
AUTO_SPAWN = 120
#: spawn.c docmd(): the messid stralloc, its terminating NUL included, may hold 100 bytes.
MESSID_MAX = 100

# spawn.c docmd() and err(): the protocol's own error reports.
NOMEM = "Zqmail-spawn out of memory. (#4.3.0)\n"
DELNUM_NEGATIVE = "ZInternal error: delnum negative. (#4.3.5)\n"
DELNUM_BIG = "ZInternal error: delnum too big. (#4.3.5)\n"
DELNUM_USED = "ZInternal error: delnum in use. (#4.3.5)\n"
MESSID_NONNUMERIC = "DInternal error: messid has nonnumerics. (#5.3.5)\n"
MESSID_LONG = "DInternal error: messid too long. (#5.3.5)\n"
MESSID_SHORT = "DInternal error: messid too short. (#5.3.5)\n"
NO_HOST = "DSorry, address must include host name. (#5.1.3)\n"
OPEN = "Zqmail-spawn unable to open message. (#4.3.0)\n"
FSTAT = "Zqmail-spawn unable to fstat message. (#4.3.0)\n"
WRONG_TYPE = "ZSorry, message has wrong type. (#4.3.5)\n"
PIPE = "Zqmail-spawn unable to create pipe. (#4.3.0)\n"
FORK = "Zqmail-spawn unable to fork. (#4.3.0)\n"


@dataclass(frozen=True, kw_only=True)
class Command:
    delnum: int
    messid: bytes
    sender: bytes
    recipient: bytes


class CommandParser:
    """spawn.c getcmd(): bytes in, commands out, any chunking."""

    def __init__(self) -> None:
        self.stage = 0
        self.delnum = 0
        self.fields: list[bytearray] = [bytearray(), bytearray(), bytearray()]

    def feed(self, data: bytes) -> list[Command]:
        """The commands ``data`` completes: a byte for the delivery number,
        then three fields each ended by a NUL (each field's bytes found with
        find(), not taken a byte at a time)."""
        done: list[Command] = []
        i, n = 0, len(data)
        while i < n:
            if self.stage == 0:
                self.delnum = data[i]
                self.fields = [bytearray(), bytearray(), bytearray()]
                self.stage = 1
                i += 1
                continue
            nul = data.find(b"\0", i)
            self.fields[self.stage - 1] += data[i : n if nul < 0 else nul]
            if nul < 0:
                break
            i = nul + 1
            if self.stage < 3:
                self.stage += 1
                continue
            messid, sender, recip = (bytes(f) for f in self.fields)
            done.append(Command(delnum=self.delnum, messid=messid, sender=sender, recipient=recip))
            self.stage = 0
        return done


def check_command(cmd: Command, in_use: set[int]) -> str | None:
    """docmd()'s checks before a delivery starts, in its order; the error report or None."""
    if cmd.delnum >= AUTO_SPAWN:
        return DELNUM_BIG
    if cmd.delnum in in_use:
        return DELNUM_USED
    for i, ch in enumerate(cmd.messid):
        if not (i and ch == ord("/")) and not 0x30 <= ch <= 0x39:
            return MESSID_NONNUMERIC
    if len(cmd.messid) + 1 > MESSID_MAX:
        return MESSID_LONG
    if not cmd.messid:
        return MESSID_SHORT
    if b"@" not in cmd.recipient:
        return NO_HOST
    return None


class Pending(Protocol):
    """A delivery under way outside this process (server.local.asuser.Started):
    :func:`serve_selecting` watches its descriptor and calls :meth:`readable`
    when it is, until that returns the report."""

    def fileno(self) -> int: ...

    def readable(self) -> bytes | None: ...


#: what :func:`serve_selecting`'s ``begin`` returns for a command: the report
#: now, a delivery under way, or a delivery to run in a thread of this process
Begun = bytes | Pending | Callable[[], bytes]


class _Answers:
    """What both loops share: docmd()'s checks, the delivery numbers in use,
    and the reports written back (from the loop and from delivery threads)."""

    def __init__(self, stdout: BinaryIO) -> None:
        self.stdout = stdout
        self.lock = threading.Lock()
        self.in_use: set[int] = set()

    def check(self, cmd: Command) -> bool:
        """docmd(): True when the delivery may start (its number is now in
        use); else its error report has been written."""
        with self.lock:
            error = check_command(cmd, self.in_use)
            if error is None:
                self.in_use.add(cmd.delnum)
        if error is not None:
            self.answer(cmd.delnum, error.encode())
        return error is None

    def answer(self, delnum: int, report: bytes, *, done: bool = False) -> None:
        with self.lock:
            if done:  # the delivery number is free again
                self.in_use.discard(delnum)
            self.stdout.write(bytes([delnum]) + report + b"\0")
            self.stdout.flush()

    def run(self, delnum: int, deliver: Callable[[], bytes]) -> None:
        """In a delivery thread: the delivery, then its report."""
        self.answer(delnum, deliver(), done=True)


def serve(stdin: BinaryIO, stdout: BinaryIO, deliver: Callable[[Command], bytes]) -> None:
    """Answer qmail-send's commands until end of input, then wait for the deliveries.

    ``deliver`` runs one checked command in a worker thread and returns its
    report (letter first, no NUL); it must not raise.
    """
    answers = _Answers(stdout)
    parser = CommandParser()
    read = getattr(stdin, "read1", stdin.read)  # whatever has arrived, up to 1024
    with ThreadPoolExecutor(max_workers=AUTO_SPAWN) as pool:
        while chunk := read(1024):
            for cmd in parser.feed(chunk):
                if answers.check(cmd):
                    pool.submit(answers.run, cmd.delnum, functools.partial(deliver, cmd))


def serve_selecting(stdin: BinaryIO, stdout: BinaryIO, begin: Callable[[Command], Begun]) -> None:
    """:func:`serve` from one thread: each command is begun in the loop, and
    what is under way elsewhere (a warm worker's job) is watched with a
    selector, as spawn.c's main loop select()s on its children's pipes. No
    thread is woken per delivery. Only a delivery that must run in this
    process (``begin`` returns a callable) gets a thread.

    ``begin`` and the :class:`Pending` it returns must not raise. ``stdin``
    must be a real descriptor (qmail-send's pipe).
    """
    answers = _Answers(stdout)
    parser = CommandParser()
    fd = stdin.fileno()
    with selectors.DefaultSelector() as selector, ThreadPoolExecutor(AUTO_SPAWN) as pool:
        selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            for key, _events in selector.select():
                if key.fd == fd:
                    chunk = os.read(fd, 1024)
                    if not chunk:  # end of input: the deliveries under way still finish
                        selector.unregister(fd)
                    for cmd in parser.feed(chunk):
                        if not answers.check(cmd):
                            continue
                        begun = begin(cmd)
                        if isinstance(begun, bytes):
                            answers.answer(cmd.delnum, begun, done=True)
                        elif callable(begun):
                            pool.submit(answers.run, cmd.delnum, begun)
                        else:
                            selector.register(begun, selectors.EVENT_READ, cmd.delnum)
                    continue
                pending: Pending = key.fileobj  # type: ignore[assignment]
                report = pending.readable()
                if report is not None:
                    selector.unregister(pending)
                    answers.answer(key.data, report, done=True)
