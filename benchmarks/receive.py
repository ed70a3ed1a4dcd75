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
from collections.abc import Iterator
from pathlib import Path

HOST = "127.0.0.1"
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


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def qmail_sim(home: Path) -> Iterator[int]:
    from server.home import setup

    setup(home, me="bench.example")
    cmd = [sys.executable, "-m", "harness.cli", "serve", "--smtp", f"{HOST}:0", str(home)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if not select.select([proc.stdout], [], [], 30)[0]:
            raise RuntimeError("qmail-sim serve did not start")
        line = proc.stdout.readline().decode()
        yield int(line.rsplit(":", 1)[1])
    finally:
        stop(proc)


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(["smtp-sink", "-u", "nobody", f"{HOST}:{port}", "256"])
    try:
        wait_port(port)
        yield port
    finally:
        stop(proc)


def _body() -> bytes:
    head = f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: benchmark\r\n\r\n".encode()
    line = b"x" * 70 + b"\r\n"
    body = (line * (MESSAGE_SIZE // len(line) + 1))[: MESSAGE_SIZE - len(head) - 2]
    return head + body.rstrip(b"x\r\n") + b"\r\n"


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
        with qmail_sim(home) as port:
            rate = messages / send(port, messages, clients)
        if queued(home) != messages:
            raise RuntimeError(f"{queued(home)} of {messages} messages in the queue")
    return rate


def queue_floor(messages: int) -> float:
    """Messages per second that the queue writer alone takes, one after another:
    the durable steps (two fsyncs, links) every accepted message must pay."""
    from harness.commands.serve import make_context
    from server.home import setup
    from server.queue.client import queue_message

    with tempfile.TemporaryDirectory(prefix="qmail-sim-bench-") as tmp:
        home = Path(tmp) / "qmail"
        setup(home, me="bench.example")
        ctx = make_context(home)
        body = _body().replace(b"\r\n", b"\n")
        start = time.monotonic()
        for _ in range(messages):
            result = queue_message(ctx, {}, body, SENDER, [RECIPIENT], invoker="network")
            if result.error:
                raise RuntimeError(result.error)
        return messages / (time.monotonic() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per figure; the best is shown (default 2)"
    )
    args = parser.parse_args()
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
    floor = max(queue_floor(args.messages) for _ in range(args.repeat))
    print(f"queue writer alone, one message after another: {floor:.0f} msg/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
