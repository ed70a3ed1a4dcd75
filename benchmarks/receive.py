"""Messages accepted per second by the live receive path, beside Postfix's smtp-sink.

    python benchmarks/receive.py [--messages N] [--concurrency 1 10]

Makes a throw-away qmail home, runs ``qmail-sim serve --smtp`` on loopback
and sends N messages of about 2 KB, one message per connection, with 1 and
with 10 clients at once. Every message goes into the home's real queue with
fsync (qmail-queue's order: pid/, mess/, intd/, todo/). The same client then
sends to Postfix's ``smtp-sink`` (which accepts and discards) on the same
machine, and the ratio of the two rates is printed. A last line gives the
rate of the queue writer alone (no SMTP), the floor set by the disk.

The client is Postfix's ``smtp-source`` when installed (``apt-get install
postfix``; Postfix itself is never started), else a small asyncio client of
our own for both targets. Loopback only; every loop is bounded.

    python benchmarks/receive.py --reference-qmail /var/qmail [--messages N]

With ``--reference-qmail DIR`` (root; DIR a real netqmail home built with
``make setup check`` and qmail's users), the same client sends the same
messages to real qmail and to ours in the same run instead, and the ratio
printed is ours/real:

- real: ``tcpserver -D -H -R -l bench.example -x RULES -u QMAILD -g NOFILES
  127.0.0.1 PORT DIR/bin/qmail-smtpd`` (Debian's ucspi-tcp; ``-u``/``-g``
  take numbers), so each connection is a fork+exec of qmail-smtpd as qmaild,
  which runs the setuid-qmailq ``qmail-queue`` for the message;
- ours: ``qmail-sim serve --smtp 127.0.0.1:0 --rules RULES --localname
  bench.example HOME`` on a split home made by ``qmail-sim setup`` as root
  (qmail-smtpd as qmaild, queueing through a queue service as qmailq).

Both get the same rules cdb (``127.:allow,RELAYCLIENT=""``, built by
tcprules), the same control/ (config-fast bench.example) and no identd or
DNS lookups (tcpserver ``-H -R``; ours makes none); TCP_NODELAY on both
(``-D``; ours sets it). No qmail-send runs on either side, so the queue only
fills; it is emptied before every run and each run checks that every
message reached ``todo/``. Runs alternate between the two sides (real first
in odd rounds, ours first in even ones), each figure is the median of
``--repeat`` runs (default 3), and the load average is printed with every
round, as other work on the machine moves the absolute rates. Each run
first sends ``--warm-up`` messages (default 100) to the server it has just
started, untimed, and empties the queue: both servers are timed as they run
once started (ours as a long-running ``serve``, its imports done and its
queue-service connections open; real qmail with its binaries, the rules
cdb and the queue's directories in the page cache).

With ``--floor`` each round also times the queue writes alone, on a third
home in the same scratch directory: the same steps in qmail-queue's order
(pid file, mess/ written and fsync'd, intd/ written and fsync'd, the todo/
link), in process, one thread per client and no SMTP. That is the floor the
disk sets; the last table prints how close ours comes to it.

DIR is never written: the benchmark re-executes itself in a private mount
namespace, copies DIR to a scratch directory and bind-mounts the copy over
DIR there (real qmail has its home compiled in, so a copy elsewhere would
not be used); see ``benchmarks/reference_qmail.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from reference_qmail import add_journaled_option, clean_queue, stop, stop_group

HOST = "127.0.0.1"


class Server(NamedTuple):
    """A server listening for the benchmark: its port and its first process."""

    port: int
    pid: int


SENDER = "bench@client.example"
RECIPIENT = "rcpt@bench.example"
MESSAGE_SIZE = 2048


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port}")


@contextlib.contextmanager
def qmail_sim(home: Path, *options: str, make: bool = True) -> Iterator[Server]:
    """``qmail-sim serve --smtp`` on ``home`` (made here unless ``make`` is false)."""
    from server.home import setup

    if make:
        setup(home, me="bench.example")
    cmd = [sys.executable, "-m", "harness.cli", "serve", "--smtp", f"{HOST}:0", *options, str(home)]
    # unbuffered: select() must see every line the pipe holds
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, bufsize=0, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = ""
        while not line.startswith("listening smtp "):  # a split serve names its queue first
            if not select.select([proc.stdout], [], [], 30)[0]:
                raise RuntimeError("qmail-sim serve did not start")
            line = proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("qmail-sim serve ended before it listened")
        yield Server(int(line.rsplit(":", 1)[1]), proc.pid)
    finally:
        stop_group(proc, timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(["smtp-sink", "-u", "nobody", f"{HOST}:{port}", "256"])
    try:
        wait_port(port)
        yield port
    finally:
        stop(proc, timeout=10)


def _body() -> bytes:
    """A message of MESSAGE_SIZE bytes in whole CR LF lines (header, then lines of x)."""
    head = f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: benchmark\r\n\r\n".encode()
    line = b"x" * 70 + b"\r\n"
    body = (line * (MESSAGE_SIZE // len(line) + 1))[: MESSAGE_SIZE - len(head) - 2]
    return head + body.rstrip(b"\r\n") + b"\r\n"


async def _one(port: int, body: bytes) -> bool:
    reader, writer = await asyncio.open_connection(HOST, port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await reader.readline()
        for command in (
            b"HELO client.example",
            f"MAIL FROM:<{SENDER}>".encode(),
            f"RCPT TO:<{RECIPIENT}>".encode(),
            b"DATA",
        ):
            writer.write(command + b"\r\n")
            while (await reader.readline())[3:4] == b"-":
                pass
        writer.write(body + b".\r\nQUIT\r\n")
        reply = await reader.readline()
        await reader.readline()
        if not reply.startswith(b"250"):
            print(f"refused: {reply!r}", file=sys.stderr)
        return reply.startswith(b"250")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _ours(port: int, messages: int, clients: int) -> int:
    body, todo, ok = _body(), iter(range(messages)), 0

    async def worker() -> None:
        nonlocal ok
        for _ in todo:
            accepted = await _one(port, body)  # not "ok += await": that loses counts
            ok += accepted

    await asyncio.gather(*(worker() for _ in range(clients)))
    return ok


def send(port: int, messages: int, clients: int) -> float:
    """Seconds to deliver ``messages`` messages with ``clients`` parallel sessions."""
    start = time.monotonic()
    source = shutil.which("smtp-source")
    if source is not None:
        cmd = [
            source,
            "-s",
            str(clients),
            "-m",
            str(messages),
            "-l",
            str(MESSAGE_SIZE),
            "-f",
            SENDER,
            "-t",
            RECIPIENT,
            "-M",
            "client.example",
            f"{HOST}:{port}",
        ]
        subprocess.run(cmd, check=True, timeout=600)
    else:
        accepted = asyncio.run(_ours(port, messages, clients))
        if accepted != messages:
            raise RuntimeError(f"only {accepted} of {messages} messages accepted")
    return time.monotonic() - start


def queued(home: Path) -> int:
    return sum(1 for p in (home / "queue" / "todo").iterdir() if p.is_file())


def measure_ours(messages: int, clients: int) -> float:
    """Messages per second into a fresh home's queue; checks they all arrived."""
    with tempfile.TemporaryDirectory(prefix="qmail-sim-bench-") as tmp:
        home = Path(tmp) / "qmail"
        with qmail_sim(home) as server:
            rate = messages / send(server.port, messages, clients)
        if queued(home) != messages:
            raise RuntimeError(f"{queued(home)} of {messages} messages in the queue")
    return rate


def queue_floor(
    messages: int,
    clients: int = 1,
    home: Path | None = None,
    empty: Callable[[Path], None] = clean_queue,
) -> float:
    """Messages per second that the queue writer alone takes, ``clients`` at a
    time (one thread each): the durable steps (pid file, links, two fsyncs, in
    qmail-queue's order) every accepted message must pay, with no SMTP and no
    process or socket between. ``home``: queue there (emptied before and
    after, by ``empty``), else in a fresh home."""
    if home is None:
        from server.home import setup

        with tempfile.TemporaryDirectory(prefix="qmail-sim-bench-") as tmp:
            fresh = Path(tmp) / "qmail"
            setup(fresh, me="bench.example")
            return queue_floor(messages, clients, fresh)
    import threading

    from harness.commands.serve import make_context
    from server.queue.client import queue_message

    empty(home)
    ctx = make_context(home)
    body = _body().replace(b"\r\n", b"\n")
    todo = iter(range(messages))
    errors: list[str] = []

    def writer() -> None:
        for _ in todo:
            result = queue_message(ctx, {}, body, SENDER, [RECIPIENT], invoker="network")
            if result.error:
                errors.append(result.error)

    threads = [threading.Thread(target=writer) for _ in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = messages / (time.monotonic() - start)
    if errors or queued(home) != messages:
        raise RuntimeError(f"queue floor: {errors[:1]}, {queued(home)} of {messages} queued")
    empty(home)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--warm-up",
        type=int,
        default=100,
        metavar="N",
        help="with --reference-qmail: N messages to each server before every timed run, "
        "untimed and emptied away (0: none), so that both are timed as they run once started",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="runs per figure: the best of 2 is shown, or with --reference-qmail the median of 3",
    )
    parser.add_argument(
        "--reference-qmail",
        type=Path,
        metavar="DIR",
        help="a real qmail home (root): run the same client against a private copy of it "
        "and against ours, interleaved, and print the ratio ours/real",
    )
    parser.add_argument(
        "--dir", type=Path, help="where the scratch homes go with --reference-qmail (default /tmp)"
    )
    parser.add_argument(
        "--set-aside",
        action="store_true",
        help="with --reference-qmail: empty the queues between runs by moving their files "
        "aside (removed at the end) rather than unlinking them, so that no run's file "
        "creations pay ext4's scan of recently freed inodes (see receive_reference.set_aside)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="with --reference-qmail: also time the queue writes alone (in process, as many "
        "threads as clients, no SMTP) in each round, and print how close ours comes to them",
    )
    add_journaled_option(parser)
    args = parser.parse_args()
    if args.reference_qmail is not None:
        client = "smtp-source" if shutil.which("smtp-source") else "asyncio client"
        from receive_reference import compare_with_reference

        return compare_with_reference(args, client)
    args.repeat = args.repeat or 2
    have_sink = shutil.which("smtp-sink") is not None
    client = "smtp-source" if shutil.which("smtp-source") else "asyncio client"
    print(
        f"{args.messages} messages of ~{MESSAGE_SIZE} bytes, one per connection, via {client};"
        f" best of {args.repeat}"
    )
    print(f"{'clients':>7}  {'qmail-sim msg/s':>15}  {'smtp-sink msg/s':>15}  {'ratio':>6}")
    for clients in args.concurrency:
        ours = max(measure_ours(args.messages, clients) for _ in range(args.repeat))
        sink = None
        if have_sink:
            with smtp_sink() as port:
                sink = max(
                    args.messages / send(port, args.messages, clients) for _ in range(args.repeat)
                )
        sink_text = f"{sink:15.0f}" if sink else f"{'(no smtp-sink)':>15}"
        ratio = f"{ours / sink:6.2f}" if sink else f"{'-':>6}"
        print(f"{clients:>7}  {ours:15.0f}  {sink_text}  {ratio}", flush=True)
    for clients in args.concurrency:
        floor = max(queue_floor(args.messages, clients) for _ in range(args.repeat))
        print(f"queue writer alone, {clients} at a time: {floor:.0f} msg/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
