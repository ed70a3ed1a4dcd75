"""Local deliveries per second, and qmail-send's memory with a large queue.

    python benchmarks/delivery.py [--messages 10000] [--queued 100000] [--dir DIR]

1. Delivery rate: makes a throw-away qmail home, queues ``--messages`` small
   messages to ``postmaster@`` (the alias user, delivered by helper E's
   LocalChannel into ``HOME/alias/Maildir/``) through the real in-process
   qmail-queue (fsync on), then runs qmail-send as a daemon
   (:class:`server.send.daemon.Daemon`: real clock, worker threads up to
   concurrencylocal = 10, real fsync in qmail-send's steps and in the Maildir
   delivery) and times from its start until the last ``end msg``.
2. Memory: writes ``--queued`` messages as qmail-send leaves them after
   preprocessing (``mess/``, ``info/``, ``remote/``), starts qmail-send's
   engine on them (pqstart reads all of them into its schedule) and runs one
   pass in which every remote delivery is deferred at once by a stub
   channel, measuring the peak with tracemalloc and the process's ru_maxrss.

Both figures are printed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.home import setup
from server.programs import ProgramContext
from server.qdir import qfn
from server.runtime import real_runtime, virtual_runtime
from server.spawn import DeliveryJob

ME = "bench.example"
BODY = b"From: a@client.example\nTo: postmaster@bench.example\nSubject: bench\n\nhello\n"


def _ctx(home: Path) -> ProgramContext:
    """The live server's runtime (as ``qmail-sim serve`` makes it): one process,
    so each qmail-queue and qmail-local run gets its own number, as its own pid
    would be; Maildir names (time.pid.host) stay unique."""
    pids = itertools.count(os.getpid() + 1)
    runtime = dataclasses.replace(real_runtime(), next_pid=lambda: next(pids))
    return ProgramContext(home=home, runtime=runtime, stderr=sys.stderr.buffer)


def delivery_rate(base: Path, messages: int) -> tuple[float, float]:
    from server.local.lspawn import LocalChannel
    from server.queue.client import queue_message
    from server.send.daemon import Daemon

    home = base / "deliver"
    setup(home, me=ME)
    for sub in ("tmp", "new", "cur"):
        (home / "alias" / "Maildir" / sub).mkdir(parents=True)
    ctx = _ctx(home)
    started = time.perf_counter()
    for _ in range(messages):
        result = queue_message(ctx, {}, BODY, "a@client.example", [f"postmaster@{ME}"], invoker=0)
        if result.error:
            raise SystemExit(f"queueing failed: {result.error}")
    queue_rate = messages / (time.perf_counter() - started)

    done = threading.Event()
    ended = 0

    def log(line: str) -> None:
        nonlocal ended
        if line.startswith("end msg "):
            ended += 1
            if ended == messages:
                done.set()
        elif ": failure: " in line or ": deferral: " in line:
            print(line, file=sys.stderr)

    channel = LocalChannel(ctx, default_delivery="./Maildir/")
    daemon = Daemon(ctx, {"local": channel, "remote": channel}, log)
    thread = threading.Thread(target=daemon.run)
    started = time.perf_counter()
    thread.start()
    if not done.wait(timeout=3600):
        raise SystemExit(f"only {ended} of {messages} delivered within an hour")
    elapsed = time.perf_counter() - started
    daemon.terminate()
    thread.join()
    delivered = len(os.listdir(home / "alias" / "Maildir" / "new"))
    if delivered != messages:
        raise SystemExit(f"{delivered} files in the Maildir, expected {messages}")
    return messages / elapsed, queue_rate


class DeferAll:
    def deliver(self, job: DeliveryJob) -> bytes:
        return b"Zbenchmark: deferred.\n"


def write_preprocessed(home: Path, count: int) -> None:
    """The files qmail-send's todo_do leaves: mess, info, remote (no fsync needed)."""
    queue = home / "queue"
    for msgid in range(1, count + 1):
        qfn(queue, "mess", msgid).write_bytes(BODY)
        qfn(queue, "info", msgid).write_bytes(b"Fa@client.example\0")
        qfn(queue, "remote", msgid).write_bytes(f"Tuser{msgid}@far.example\0".encode())


def queued_memory(base: Path, count: int) -> tuple[float, float, float]:
    from server.send.core import QmailSend

    home = base / "memory"
    setup(home, me=ME)
    write_preprocessed(home, count)
    runtime, _clock = virtual_runtime(start=time.time() + 60)
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
    lines = 0

    def log(_line: str) -> None:
        nonlocal lines
        lines += 1

    tracemalloc.start()
    started = time.perf_counter()
    send = QmailSend(ctx, {"local": DeferAll(), "remote": DeferAll()}, log)
    send.run_due()
    elapsed = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if send.status().scheduled != count:
        raise SystemExit(f"{send.status().scheduled} scheduled, expected {count}")
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20, maxrss_kib / 1024, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, help="where to make the homes (default: a temp dir)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="qmail-sim-bench-", dir=args.dir))
    try:
        rate, queue_rate = delivery_rate(base, args.messages)
        print(f"queued {args.messages} messages: {queue_rate:.0f} messages/s (qmail-queue, fsync)")
        print(
            f"local delivery: {rate:.0f} deliveries/s "
            f"({args.messages} messages into one Maildir, daemon mode, fsync)"
        )
        peak, maxrss, elapsed = queued_memory(base, args.queued)
        print(
            f"qmail-send with {args.queued} messages queued: peak {peak:.1f} MiB (tracemalloc), "
            f"ru_maxrss {maxrss:.1f} MiB, startup + one deferring pass {elapsed:.1f} s"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
