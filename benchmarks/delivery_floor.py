"""``benchmarks/delivery.py --reference-qmail DIR --floor``: the disk's floor for a backlog.

The file steps one message costs, in qmail's order, with no qmail-send, no
spawn program and no qmail-clean: only the system calls, from Python, as
root, in a scratch queue beside the two homes (same filesystem). Per message
(qmail-send.c todo_do, qmail-local.c maildir_child, markdone, job_close,
messdone, qmail-clean.c):

1. todo/: read ``todo/N``, stat ``mess/N``; unlink ``local/N``, ``remote/N``,
   ``info/N`` (none exist); create ``info/N`` and ``local/N`` exclusively;
   write and fsync ``info/N``, then ``local/N``; unlink ``intd/N`` and
   ``todo/N``;
2. the delivery: read ``mess/N``; create ``tmp/NAME`` exclusively in the
   Maildir, write it, fsync, close; link it to ``new/NAME``; unlink
   ``tmp/NAME``;
3. markdone: write ``D`` over the recipient's ``T`` in ``local/N``;
4. job_close, messdone, foop: unlink ``local/N``, ``info/N``, ``intd/N``
   (gone already), ``mess/N``.

The queue files qmail-queue leaves (``mess``, ``intd``, ``todo``) are made
before the clock starts. Printed twice: one message after another (one
thread: qmail-send's loop doing even the deliveries itself), and with
concurrencylocal threads (each message's steps in order, different
messages' at once: what the disk allows when fsyncs overlap).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: concurrencylocal's default (qmail-send(8))
THREADS = 10
SPLIT = 23
ENVELOPE = b"u0\0p1\0Fa@client.example\0Tu0@bench.example\0\0"
LOCAL = b"Tu0@bench.example\0"
INFO = b"Fa@client.example\0"
HEADER = b"Return-Path: <a@client.example>\nDelivered-To: u0@bench.example\n"


def _write_new(path: str, data: bytes, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class Floor:
    def __init__(self, where: Path, messages: int, maildirs: int, body: bytes) -> None:
        self.where = where
        self.messages = messages
        self.body = body
        self.q = str(where / "queue")
        self.maildirs = [str(where / f"u{n}" / "Maildir") for n in range(maildirs)]

    def prepare(self) -> None:
        shutil.rmtree(self.where, ignore_errors=True)
        for sub in ("intd", "todo"):
            os.makedirs(f"{self.q}/{sub}")
        for sub in ("mess", "info", "local", "remote"):
            for i in range(SPLIT):
                os.makedirs(f"{self.q}/{sub}/{i}")
        for maildir in self.maildirs:
            for sub in ("tmp", "new", "cur"):
                os.makedirs(f"{maildir}/{sub}")
        for n in range(1, self.messages + 1):
            _write_new(self.fn("mess", n), self.body, fsync=False)
            _write_new(f"{self.q}/intd/{n}", ENVELOPE, fsync=False)
            os.link(f"{self.q}/intd/{n}", f"{self.q}/todo/{n}")
        os.sync()

    def fn(self, sub: str, n: int) -> str:
        if sub in ("mess", "info", "local", "remote"):
            return f"{self.q}/{sub}/{n % SPLIT}/{n}"
        return f"{self.q}/{sub}/{n}"

    def one(self, n: int) -> None:
        fn = self.fn
        _read(fn("todo", n))
        os.stat(fn("mess", n))
        for sub in ("local", "remote", "info"):
            _unlink(fn(sub, n))
        for sub, data in (("info", INFO), ("local", LOCAL)):
            _write_new(fn(sub, n), data, fsync=True)
        _unlink(fn("intd", n))
        _unlink(fn("todo", n))
        message = _read(fn("mess", n))
        maildir = self.maildirs[n % len(self.maildirs)]
        name = f"{int(time.time())}.{n}.floor"
        _write_new(f"{maildir}/tmp/{name}", HEADER + message, fsync=True)
        os.link(f"{maildir}/tmp/{name}", f"{maildir}/new/{name}")
        os.unlink(f"{maildir}/tmp/{name}")
        fd = os.open(fn("local", n), os.O_WRONLY)
        os.pwrite(fd, b"D", 0)
        os.close(fd)
        for sub in ("local", "info", "intd", "mess"):
            _unlink(fn(sub, n))

    def run(self, threads: int) -> float:
        """Messages per second with ``threads`` threads (1: strictly one after another)."""
        self.prepare()
        started = time.perf_counter()
        if threads == 1:
            for n in range(1, self.messages + 1):
                self.one(n)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(self.one, range(1, self.messages + 1)))
        elapsed = time.perf_counter() - started
        delivered = sum(len(os.listdir(f"{m}/new")) for m in self.maildirs)
        if delivered != self.messages:
            raise SystemExit(f"floor: {delivered} of {self.messages} delivered")
        return self.messages / elapsed


def floor_line(where: Path, messages: int, maildirs: int, body: bytes) -> str:
    floor = Floor(where, messages, maildirs, body)
    try:
        serial = floor.run(1)
        overlapped = floor.run(THREADS)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return (
        f"floor, {maildirs} Maildirs (the file steps alone, 3 fsyncs a message): "
        f"one at a time {serial:.0f}/s, {THREADS} threads {overlapped:.0f}/s"
    )
