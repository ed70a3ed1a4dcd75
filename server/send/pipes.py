"""qmail-send's side of the pipes to qmail-lspawn, qmail-rspawn and qmail-clean.

When qmail-start runs qmail-send as qmail does (separate processes), the
channels are pipes (qmail-send(8)): commands to qmail-lspawn on descriptor 1,
its reports on 2; qmail-rspawn on 3 and 4; qmail-clean on 5 and 6.

Spawn protocol (spawn.c, qmail-send.c comm_write/del_dochan): the spawn
program first writes one byte, its concurrency limit. A command is the
delivery number as one byte, then ``split/id`` (the message, relative to
``queue/mess``), the sender and the recipient, each ending in NUL. A report
is the delivery number, the ``K``/``Z``/``D`` text, and a NUL.

:class:`SpawnPipe` is a :class:`~server.spawn.Channel` that the daemon's loop
drives as qmail-send.c's does: it writes each command and select()s on the
reports with its other descriptors.
:class:`CleanPipe` asks qmail-clean to remove files (``foop/N``, ``todo/N``)
and reads its one-byte answer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from server.fdwrite import write_all
from server.qdir import SPLIT
from server.send.schedule import REPORTMAX
from server.spawn import DeliveryJob

SPAWN_DIED = b"Zqmail-send lost its connection to the spawn program. (#4.3.0)\n"


def _read_exact(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def command(delnum: int, job: DeliveryJob) -> bytes:
    """comm_write(): the bytes qmail-send writes for one delivery."""
    split = f"{job.msgid % SPLIT}/{job.msgid}".encode()
    return (
        bytes([delnum])
        + split
        + b"\0"
        + job.sender.encode("latin-1")
        + b"\0"
        + job.recipient.encode("latin-1")
        + b"\0"
    )


@dataclass
class ReportSplitter:
    """del_dochan's reassembly: bytes in, (delnum, report) pairs out; a line
    keeps at most ``limit`` bytes, its delivery number included."""

    line: bytearray = field(default_factory=bytearray)
    limit: int = REPORTMAX

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        done = []
        pos = 0
        while pos < len(data):
            if len(self.line) < 2:
                # the delivery number, then the report's first byte: either
                # may be 0; only a NUL after them ends a report (del_dochan)
                self.line.append(data[pos])
                pos += 1
                continue
            end = data.find(b"\0", pos)
            stop = len(data) if end < 0 else end
            room = self.limit - len(self.line)  # del_dochan keeps no more of a line
            if room > 0:
                self.line += data[pos : min(stop, pos + room)]
            if end < 0:
                break
            done.append((self.line[0], bytes(self.line[1:])))
            self.line.clear()
            pos = end + 1
        return done


class SpawnPipe:
    """One spawn program's two pipes, driven from qmail-send's loop.

    As qmail-send.c does: the loop writes each command (:meth:`begin`,
    comm_write), select()s on the report descriptor with its others
    (:meth:`fileno`), and reads what has come when it is readable
    (:meth:`readable`, del_dochan), which hands each report to its
    delivery's callback. No thread reads on the loop's behalf.
    """

    def __init__(self, fd_out: int, fd_in: int) -> None:
        self.fd_out = fd_out
        self.fd_in = fd_in
        first = _read_exact(fd_in, 1)
        if not first:
            raise OSError("hath the daemon spawn no fire?")
        #: the spawn program's concurrency (conf-spawn), announced in its first byte
        self.limit = first[0]
        self.free = list(range(self.limit))
        #: deliveries started with :meth:`begin`: who gets each one's report
        self.waiting: dict[int, Callable[[bytes], None]] = {}
        self.alive = True
        self.splitter = ReportSplitter()
        #: called for a report of no delivery under way (the daemon logs
        #: qmail-send's "delivery report out of range" warning)
        self.on_stray: Callable[[], None] | None = None

    def fileno(self) -> int:
        """The descriptor the reports come on, for the loop's select()."""
        return self.fd_in

    def readable(self) -> None:
        """del_dochan: read what has come (the descriptor is readable) and
        hand each whole report to its delivery; at the end of the pipe every
        delivery still under way gets :data:`SPAWN_DIED`."""
        try:
            data = os.read(self.fd_in, 4096)
        except (BlockingIOError, InterruptedError):
            return  # del_dochan: a failed read is tried again at the next select
        except OSError:
            data = b""  # no pipe to read any more: as its end
        if not data:
            self._died()
            return
        for delnum, report in self.splitter.feed(data):
            done = self.waiting.pop(delnum, None)
            if done is None:
                if self.on_stray is not None:
                    self.on_stray()
                continue
            self.free.append(delnum)
            done(report)

    def _died(self) -> None:
        self.alive = False
        lost, self.waiting = self.waiting, {}
        for done in lost.values():
            done(SPAWN_DIED)

    def begin(self, job: DeliveryJob, done: Callable[[bytes], None]) -> None:
        """comm_write: the delivery's command is written now, and ``done`` gets
        its report from :meth:`readable`. The scheduler never starts more
        deliveries at once than the spawn program's limit, so a delivery
        number is free."""
        if not self.alive:
            done(SPAWN_DIED)
            return
        delnum = self.free.pop(0)
        self.waiting[delnum] = done
        try:
            write_all(self.fd_out, command(delnum, job))
        except OSError:
            self._died()

    def deliver(self, job: DeliveryJob) -> bytes:
        """One delivery, waited for: :meth:`begin`, then the reports read
        until its own. Only where no loop reads this pipe."""
        got: list[bytes] = []
        self.begin(job, got.append)
        while not got:
            self.readable()
        return got[0]


class CleanPipe:
    """qmail-clean over descriptors 5 and 6: one command, one answer byte.

    qmail-clean answers its commands one by one, in the order they came, so
    several threads may each send a command while others wait (qmail-send
    has one outstanding at a time; the daemon's queue-step threads, several).
    Each command takes a ticket as it is written; whoever reads hands every
    answer to its ticket, and each caller returns with its own answer.
    """

    def __init__(self, fd_out: int, fd_in: int) -> None:
        self.fd_out = fd_out
        self.fd_in = fd_in
        self.write_lock = threading.Lock()
        self.read_lock = threading.Lock()
        self.sent = 0  # tickets given
        self.answered = 0  # answers read
        self.answers: dict[int, bytes] = {}
        #: set when qmail-clean went away; qmail-send then logs an alert and exits
        self.dead = False

    def __call__(self, kind: str, msgid: int) -> bool:
        return self.many(kind, [msgid])[0]

    def many(self, kind: str, msgids: list[int]) -> list[bool]:
        """Several commands written at once, then each one's answer read
        (qmail-clean answers in the order the commands came): one round trip
        where one each took as many."""
        if not msgids:
            return []
        with self.write_lock:
            try:
                write_all(self.fd_out, b"".join(f"{kind}/{m}\0".encode() for m in msgids))
            except OSError:
                self.dead = True
                return [False] * len(msgids)
            first = self.sent
            self.sent += len(msgids)
        return [self._answer(ticket) for ticket in range(first, first + len(msgids))]

    def _answer(self, ticket: int) -> bool:
        """The answer to command number ``ticket``, read (with any before it) if not yet in."""
        with self.read_lock:
            while ticket not in self.answers and not self.dead:
                try:
                    data = os.read(self.fd_in, 256)
                except OSError:
                    data = b""
                if not data:
                    self.dead = True
                for byte in data:
                    self.answers[self.answered] = bytes([byte])
                    self.answered += 1
            answer = self.answers.pop(ticket, b"")
        return answer == b"+"
