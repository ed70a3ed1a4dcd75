"""Local deliveries per second, and qmail-send's memory with a large queue.

    python benchmarks/delivery.py [--messages 10000] [--queued 100000] [--dir DIR]

1. Delivery rate: makes a throw-away qmail home, queues ``--messages`` small
   messages to ``postmaster@`` (the alias user, delivered by
   server.local.lspawn.LocalChannel into ``HOME/alias/Maildir/``) through the real in-process
   qmail-queue (fsync on), then runs qmail-send as a daemon
   (:class:`server.send.daemon.Daemon`: real clock, worker threads up to
   concurrencylocal = 10, real fsync in qmail-send's steps and in the Maildir
   delivery) and times from its start until the last ``end msg``.

   Reference, measured in the same run: the same number of files, each as
   large as one of the files the daemon just delivered (``Return-Path:``,
   ``Delivered-To:`` and the message), written into a fresh Maildir beside
   it (same filesystem) the way any maildir delivery must, with Python's
   standard library alone: create ``tmp/<unique>`` exclusively, write,
   fsync, close, link to ``new/``, unlink the ``tmp/`` name; from as many
   threads as concurrencylocal. No queue, no scheduling, no .qmail lookup,
   no qmail-send bookkeeping (whose own fsyncs on ``info/``/``mess/``
   removal are part of our figure, not of the reference). It is the floor
   the disk and the interpreter set for the delivery itself, so the ratio
   ours/reference says what share of that floor qmail's logic leaves.
2. Memory: writes ``--queued`` messages as qmail-send leaves them after
   preprocessing (``mess/``, ``info/``, ``remote/``), starts qmail-send's
   engine on them (pqstart reads all of them into its schedule) and runs one
   pass in which every remote delivery is deferred at once by a stub
   channel, measuring the peak with tracemalloc and the process's ru_maxrss.

   Reference, measured in the same run with the same tracemalloc method: a
   plain dict holding, for each of the same number of messages, one tuple
   (id, birth time, next-retry time, recipient string as long as the one in
   its ``remote/`` file). That is the least any scheduler must keep per
   queued message, so "X times a bare record" is the overhead of ours.

All figures are printed at the end. The machine may be busy with other work
(tests running beside the benchmark), so the rates are noisy; the ratios,
measured a few seconds apart, are steadier than the absolute figures.

    python benchmarks/delivery.py --reference-qmail /var/qmail [--messages 3000]
        [--maildirs 1 100] [--repeat 3]

With ``--reference-qmail DIR`` (root; DIR a real netqmail home built with
``make setup check`` and qmail's users) it measures, instead of the above,
the same backlog delivered by real qmail and by ours, interleaved:

- both homes get the same control/ (config-fast bench.example) and the same
  users/assign: K users ``u0``..``u{K-1}`` (uid and gid 4900+i, no passwd
  entry needed), each with a home of its own (0700, theirs) holding an empty
  ``Maildir/``; each side's own qmail-newu builds users/cdb;
- ``--messages`` messages (default 3000) to ``u{i mod K}@bench.example`` are
  queued on each side with that side's own qmail-queue while no qmail-send
  runs: real, ``DIR/bin/qmail-queue`` (setuid qmailq) once per message;
  ours, our queue writer in a child process as qmailq:qmail, as the setuid
  wrapper runs it (one Python start per message would take minutes);
- then the clock starts and qmail-send starts: real, ``env -
  PATH=DIR/bin:/usr/bin:/bin qmail-start ./Maildir/`` as root (qmail-send,
  qmail-lspawn, qmail-rspawn and qmail-clean under their uids, one
  qmail-local per delivery as the user); ours, ``env - PATH=HOME/bin:...
  PYTHONPATH=REPO HOME/bin/qmail-start ./Maildir/`` as root on a split home
  made by ``qmail-sim setup`` (what ``qmail-sim serve --send HOME`` runs,
  with the programs of the tree this benchmark is in), with the same
  process model. The
  clock stops when qmail-send has logged ``delivery N: success`` for the
  last message (its log is read from qmail-start's pipe, in blocks: counting
  100 Maildirs every 20 ms, as this benchmark did before, cost the machine
  up to a tenth of a CPU, which a side short of CPU paid in its rate);
  qmail-send is then stopped with TERM, and every message must be in the
  Maildirs' ``new/``. Any ``deferral`` or ``failure`` in its log ends the
  benchmark with that line, and every delivered file must belong to its
  user (qmail-local ran as the user). Each run also prints how long after
  the start the first delivery was logged: our start-up (Python processes)
  is inside the timed span, as qmail-start's is.

``--maildirs 1 100`` measures one Maildir and 100 Maildirs (of 100 users).
``--floor`` adds, after each round, the same file steps and fsyncs per
message with no qmail-send at all, one message at a time and overlapped
(``benchmarks/delivery_floor.py``); ``--only ours`` skips real qmail.
Runs alternate between the sides (real first in odd rounds), each figure is
the median of ``--repeat`` runs (default 3), and the load average is
printed with every round. DIR is never written: the benchmark re-executes
itself in a private mount namespace, copies DIR to a scratch directory and
bind-mounts the copy over DIR there (see ``benchmarks/reference_qmail.py``;
this mode's code is ``benchmarks/delivery_reference.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import os
import resource
import shutil
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.home import setup
from server.programs import ProgramContext
from server.qdir import qfn
from server.runtime import real_runtime, virtual_runtime
from server.spawn import DeliveryJob

ME = "bench.example"
BODY = b"From: a@client.example\nTo: postmaster@bench.example\nSubject: bench\n\nhello\n"
#: concurrencylocal's default (qmail-send(8)): the daemon's local workers.
CONCURRENCY_LOCAL = 10


def _ctx(home: Path) -> ProgramContext:
    """The live server's runtime (as ``qmail-sim serve`` makes it): one process,
    so each qmail-queue and qmail-local run gets its own number, as its own pid
    would be; Maildir names (time.pid.host) stay unique."""
    pids = itertools.count(os.getpid() + 1)
    runtime = dataclasses.replace(real_runtime(), next_pid=lambda: next(pids))
    return ProgramContext(home=home, runtime=runtime, stderr=sys.stderr.buffer)


#: --to-user: a user of users/assign, as qmail-lspawn delivers to it (as root:
#: a forked child with this uid and gid per delivery)
USER_IDS = (4800, 4800)


def _user_home(home: Path, base: Path) -> Path:
    """``bench``'s home with a Maildir, given to it, and its users/assign line."""
    from server.local import newu

    user = base / "bench"
    for sub in ("tmp", "new", "cur"):
        (user / "Maildir" / sub).mkdir(parents=True)
    (home / "users" / "assign").write_text(
        f"=bench:bench:{USER_IDS[0]}:{USER_IDS[1]}:{user}:::\n.\n"
    )
    newu.build(home)
    if os.geteuid() == 0:
        os.chmod(base, 0o755)
        for path in [user, *user.rglob("*")]:
            os.chown(path, *USER_IDS)
    return user / "Maildir"


def _channel(ctx: ProgramContext) -> object:
    """qmail-lspawn's channel, switching to the recipient's uid where this
    build can and we are root (the real process model)."""
    import inspect

    from server.local.lspawn import LocalChannel

    if "switch_uid" in inspect.signature(LocalChannel).parameters:
        return LocalChannel(ctx, default_delivery="./Maildir/", switch_uid=os.geteuid() == 0)
    return LocalChannel(ctx, default_delivery="./Maildir/")


def delivery_rate(base: Path, messages: int, to_user: bool = False) -> tuple[float, float, int]:
    """Deliveries/s, queueing rate, and the size of one delivered file."""
    from server.queue.client import queue_message
    from server.send.daemon import Daemon

    home = base / "deliver"
    setup(home, me=ME)
    for sub in ("tmp", "new", "cur"):
        (home / "alias" / "Maildir" / sub).mkdir(parents=True)
    maildir = _user_home(home, base) if to_user else home / "alias" / "Maildir"
    rcpt = f"bench@{ME}" if to_user else f"postmaster@{ME}"
    ctx = _ctx(home)
    started = time.perf_counter()
    for _ in range(messages):
        result = queue_message(ctx, {}, BODY, "a@client.example", [rcpt], invoker=0)
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

    channel = _channel(ctx)
    daemon = Daemon(ctx, {"local": channel, "remote": channel}, log)  # type: ignore[dict-item]
    thread = threading.Thread(target=daemon.run)
    started = time.perf_counter()
    thread.start()
    if not done.wait(timeout=3600):
        raise SystemExit(f"only {ended} of {messages} delivered within an hour")
    elapsed = time.perf_counter() - started
    daemon.terminate()
    thread.join()
    new = maildir / "new"
    delivered = os.listdir(new)
    if len(delivered) != messages:
        raise SystemExit(f"{len(delivered)} files in the Maildir, expected {messages}")
    return messages / elapsed, queue_rate, (new / delivered[0]).stat().st_size


def maildir_reference(base: Path, messages: int, size: int, threads: int) -> float:
    """Files/s for the bare maildir steps with the standard library only.

    Each file: open ``tmp/<time>.<pid>_<n>.<host>`` with O_EXCL (mode 0600),
    write ``size`` bytes, fsync, close, link to ``new/``, unlink ``tmp/``.
    """
    maildir = base / "reference" / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    data = b"x" * (size - 1) + b"\n"
    host, pid = socket.gethostname(), os.getpid()

    def deliver_one(n: int) -> None:
        name = f"{int(time.time())}.{pid}_{n}.{host}"
        tmp, new = maildir / "tmp" / name, maildir / "new" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, new)
        os.unlink(tmp)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(deliver_one, range(messages)))
    elapsed = time.perf_counter() - started
    if len(os.listdir(maildir / "new")) != messages:
        raise SystemExit("the reference Maildir lacks files")
    return messages / elapsed


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
    return peak, maxrss_kib / 1024, elapsed


def bare_records_memory(count: int) -> int:
    """Peak tracemalloc bytes of one bare record per message, as ``queued_memory`` measures.

    Each record is a tuple (id, birth, next-retry, recipient); the recipient is
    as long as the one :func:`write_preprocessed` puts in ``remote/``. The
    times are distinct ints beyond the small-int cache, as real ones are.
    """
    birth = int(time.time())
    tracemalloc.start()
    records: dict[int, tuple[int, int, int, str]] = {}
    for msgid in range(1, count + 1):
        records[msgid] = (msgid, birth + msgid, birth + msgid + 400, f"user{msgid}@far.example")
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if len(records) != count:
        raise SystemExit("lost records")
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages", type=int, help="default 10000, or with --reference-qmail 3000"
    )
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, help="where to make the homes (default: a temp dir)")
    parser.add_argument(
        "--to-user",
        action="store_true",
        help="deliver to a users/assign user instead of the alias user; as root each "
        "delivery then runs in a child as that user, as qmail-lspawn's do",
    )
    parser.add_argument(
        "--delivery-only", action="store_true", help="skip the reference and memory figures"
    )
    parser.add_argument(
        "--reference-qmail",
        type=Path,
        metavar="DIR",
        help="a real qmail home (root): deliver the same backlog with a private copy of it "
        "and with ours, interleaved, and print the ratio ours/real",
    )
    parser.add_argument(
        "--maildirs",
        type=int,
        nargs="+",
        default=[1],
        help="with --reference-qmail: into this many Maildirs of as many users (default 1)",
    )
    parser.add_argument("--repeat", type=int, help="with --reference-qmail: runs (default 3)")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="with --reference-qmail: after each round, the same file steps and fsyncs "
        "per message with no qmail-send (benchmarks/delivery_floor.py)",
    )
    parser.add_argument(
        "--only",
        choices=("real", "ours"),
        help="with --reference-qmail: run one side only (the other's figures are 1)",
    )
    from reference_qmail import add_journaled_option

    add_journaled_option(parser)
    args = parser.parse_args()
    if args.reference_qmail is not None:
        from delivery_reference import compare_with_reference

        return compare_with_reference(args)
    args.messages = args.messages or 10_000
    base = Path(tempfile.mkdtemp(prefix="qmail-sim-bench-", dir=args.dir))
    try:
        rate, queue_rate, size = delivery_rate(base, args.messages, args.to_user)
        print(f"queued {args.messages} messages: {queue_rate:.0f} messages/s (qmail-queue, fsync)")
        print(
            f"local delivery: {rate:.0f} deliveries/s "
            f"({args.messages} messages into one Maildir, daemon mode, fsync)"
        )
        if args.delivery_only:
            return 0
        reference = maildir_reference(base, args.messages, size, CONCURRENCY_LOCAL)
        print(
            f"reference (stdlib tmp/ write+fsync, link to new/, {size}-byte files, "
            f"{CONCURRENCY_LOCAL} threads, same filesystem): {reference:.0f} msg/s"
        )
        print(f"ratio ours/reference: {rate / reference:.2f}")
        peak, maxrss, elapsed = queued_memory(base, args.queued)
        print(
            f"qmail-send with {args.queued} messages queued: peak {peak / 2**20:.1f} MiB "
            f"(tracemalloc), ru_maxrss {maxrss:.1f} MiB, startup + one deferring pass "
            f"{elapsed:.1f} s"
        )
        bare = bare_records_memory(args.queued)
        print(
            f"reference (dict of {args.queued} tuples: id, birth, next-retry, recipient): "
            f"peak {bare / 2**20:.1f} MiB (tracemalloc)"
        )
        print(
            f"{peak / args.queued:.0f} bytes per queued message, "
            f"{peak / bare:.1f} times a bare record per message "
            f"({bare / args.queued:.0f} bytes)"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
