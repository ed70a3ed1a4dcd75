"""qmail-send's side of the pipes to qmail-lspawn, qmail-rspawn and qmail-clean.

When qmail-start runs qmail-send as qmail does (separate processes), the
channels are pipes (qmail-send(8)): commands to qmail-lspawn on descriptor 1,
its reports on 2; qmail-rspawn on 3 and 4; qmail-clean on 5 and 6.

Spawn protocol (spawn.c, qmail-send.c comm_write/del_dochan): the spawn
program first writes one byte, its concurrency limit. A command is the
delivery number as one byte, then ``split/id`` (the message, relative to
``queue/mess``), the sender and the recipient, each ending in NUL. A report
is the delivery number, the ``K``/``Z``/``D`` text, and a NUL.

:class:`SpawnPipe` is a :class:`~server.spawn.Channel`: ``deliver`` is called
from the daemon's worker threads, takes a free delivery number, writes the
command and waits for the report that a reader thread hands it.
:class:`CleanPipe` asks qmail-clean to remove files (``foop/N``, ``todo/N``)
and reads its one-byte answer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from server.qdir import SPLIT
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
    """del_dochan's reassembly: bytes in, (delnum, report) pairs out."""

    line: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        done = []
        for byte in data:
            # the first byte is the delivery number and may itself be 0: only
            # a NUL after it ends a report (qmail-send.c del_dochan)
            if byte == 0 and len(self.line) > 1:
                done.append((self.line[0], bytes(self.line[1:])))
                self.line.clear()
            else:
                self.line.append(byte)
        return done


class SpawnPipe:
    def __init__(self, fd_out: int, fd_in: int) -> None:
        self.fd_out = fd_out
        self.fd_in = fd_in
        first = _read_exact(fd_in, 1)
        if not first:
            raise OSError("hath the daemon spawn no fire?")
        #: the spawn program's concurrency (conf-spawn), announced in its first byte
        self.limit = first[0]
        self.cond = threading.Condition()
        self.free = list(range(self.limit))
        self.reports: dict[int, bytes] = {}
        #: deliveries started with :meth:`begin`: who gets each one's report
        self.waiting: dict[int, Callable[[bytes], None]] = {}
        self.alive = True
        self.write_lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, name="spawn-reports", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        splitter = ReportSplitter()
        while True:
            try:
                data = os.read(self.fd_in, 4096)
            except OSError:
                data = b""
            calls: list[tuple[Callable[[bytes], None], bytes]] = []
            with self.cond:
                if not data:
                    self.alive = False
                    calls = [(done, SPAWN_DIED) for done in self.waiting.values()]
                    self.waiting.clear()
                    self.cond.notify_all()
                for delnum, report in splitter.feed(data):
                    done = self.waiting.pop(delnum, None)
                    if done is None:
                        self.reports[delnum] = report
                    else:
                        calls.append((done, report))
                        self.free.append(delnum)
                self.cond.notify_all()
            for done, report in calls:
                done(report)
            if not data:
                return

    def _send(self, delnum: int, job: DeliveryJob) -> bool:
        """comm_write: delivery ``delnum``'s command. False when the pipe is
        gone (then it counts as dead and the number is free again)."""
        try:
            with self.write_lock:
                _write_all(self.fd_out, command(delnum, job))
        except OSError:
            with self.cond:
                self.alive = False
                self.free.append(delnum)
            return False
        return True

    def begin(self, job: DeliveryJob, done: Callable[[bytes], None]) -> None:
        """Start a delivery without waiting for it: the command is written now
        (qmail-send's comm_write, from its loop) and ``done`` gets the report
        in the reader thread. A thread per delivery that only waits is saved.
        """
        with self.cond:
            self.cond.wait_for(lambda: bool(self.free) or not self.alive)
            if not self.alive:
                delnum = None
            else:
                delnum = self.free.pop(0)
                self.waiting[delnum] = done
        if delnum is None:
            done(SPAWN_DIED)
            return
        if not self._send(delnum, job):
            with self.cond:
                lost = self.waiting.pop(delnum, None)  # unless the reader saw the end first
            if lost is not None:
                lost(SPAWN_DIED)

    def deliver(self, job: DeliveryJob) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: bool(self.free) or not self.alive)
            if not self.alive:
                return SPAWN_DIED
            delnum = self.free.pop(0)
        if not self._send(delnum, job):
            return SPAWN_DIED
        with self.cond:
            self.cond.wait_for(lambda: delnum in self.reports or not self.alive)
            report = self.reports.pop(delnum, SPAWN_DIED)
            self.free.append(delnum)
            self.cond.notify_all()
        return report


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
        with self.write_lock:
            try:
                _write_all(self.fd_out, f"{kind}/{msgid}\0".encode())
            except OSError:
                self.dead = True
                return False
            ticket = self.sent
            self.sent += 1
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
