"""Peak memory of ``qmail-sim serve --smtp`` while K clients send big messages at once.

    python benchmarks/memory_serve.py [--clients K] [--size MB] [--split]

Makes a throw-away qmail home, runs ``qmail-sim serve --smtp`` on loopback,
sends one small message (so every import the receive path needs is done),
and reads the server's resident size: the reference, in the same run. Then
K clients each send one N-MB message at the same moment, and once all are
answered the benchmark reads the server's VmHWM (the kernel's peak resident
size, /proc/PID/status) and prints both. Every message must be accepted and
queued with fsync, byte for byte as sent (CR LF as LF).

``--split`` (root, with qmail's users) makes a split home, where ``serve``
runs qmail-smtpd as qmaild in a process of its own queueing through a queue
service as qmailq; each process of the server is then shown on its own line.

netqmail's qmail-smtpd streams the message to qmail-queue through a pipe, so
its memory does not grow with the message; ours should not either. Loopback
only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from reference_qmail import stop

HOST = "127.0.0.1"
SENDER = "bench@client.example"
RECIPIENT = "rcpt@bench.example"
#: One line of the big messages (78 letters and CR LF), sent 64 KB at a time.
LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n"
BLOCK = LINE * (65536 // len(LINE))
TIMEOUT = 600.0


def _make_home(parent: Path, split: bool) -> Path:
    from server.home import setup
    from server.privsep import QmailIds

    home = parent / "qmail"
    ids = None
    if split:
        ids = QmailIds.from_system()
        if os.geteuid() != 0 or ids is None:
            raise SystemExit("--split needs root and qmail's users (.ci/qmail-users)")
        os.chmod(parent, 0o755)  # qmaild and qmailq must reach the home
    setup(home, me="bench.example", ids=ids)
    return home


@contextlib.contextmanager
def serve(home: Path) -> Iterator[tuple[int, int]]:
    """``qmail-sim serve --smtp`` on ``home``: (its pid, the SMTP port)."""
    cmd = [sys.executable, "-m", "harness.cli", "serve", "--smtp", f"{HOST}:0", str(home)]
    # Unbuffered, so that select() sees every line not yet read.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, bufsize=0)
    try:
        assert proc.stdout is not None
        line = ""
        while not line.startswith("listening smtp "):  # a split serve names its queue first
            if not select.select([proc.stdout], [], [], 60)[0]:
                raise RuntimeError("qmail-sim serve did not start")
            line = proc.stdout.readline().decode()
            if not line.startswith("listening "):
                raise RuntimeError(f"qmail-sim serve said {line!r}")
        yield proc.pid, int(line.rsplit(":", 1)[1])
    finally:
        stop(proc, timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()


def _status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _kb(pid: int, key: str) -> int:
    """A ``kB`` figure of /proc/PID/status (VmRSS, VmHWM); 0 once the process is gone."""
    value = _status(pid).get(key, "0 kB")
    return int(value.split()[0])


def tree(root: int) -> list[int]:
    """``root`` and every process below it, by /proc's parent links."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _status(int(entry)).get("PPid")
            if ppid is not None:
                parents[int(entry)] = int(ppid)
    found, todo = [root], [root]
    while todo:
        parent = todo.pop()
        children = sorted(pid for pid, ppid in parents.items() if ppid == parent)
        found += children
        todo += children
    return found


def _name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if "--queue-service" in words:
        return "queue service"
    if "--queue-socket" in words:
        return "qmail-smtpd's serve"
    return "serve" if "serve" in words else " ".join(words[:2])


def _expect(sock_file: BinaryIO, prefix: bytes) -> bytes:
    while True:
        line = sock_file.readline()
        if not line:
            raise RuntimeError(f"connection closed waiting for {prefix!r}")
        if line[3:4] != b"-":
            if not line.startswith(prefix):
                raise RuntimeError(f"expected {prefix!r}, got {line!r}")
            return line


def send_message(port: int, blocks: int) -> None:
    """One SMTP session that sends ``blocks`` 64 KB blocks as one message."""
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
        reply = sock.makefile("rb")
        _expect(reply, b"220")
        for command, code in (
            (b"HELO client.example", b"250"),
            (f"MAIL FROM:<{SENDER}>".encode(), b"250"),
            (f"RCPT TO:<{RECIPIENT}>".encode(), b"250"),
            (b"DATA", b"354"),
        ):
            sock.sendall(command + b"\r\n")
            _expect(reply, code)
        sock.sendall(b"Subject: big\r\n\r\n")
        for _ in range(blocks):
            sock.sendall(BLOCK)
        sock.sendall(b".\r\nQUIT\r\n")
        _expect(reply, b"250")
        _expect(reply, b"221")
        reply.close()


def send_at_once(port: int, clients: int, blocks: int) -> float:
    """Seconds for ``clients`` sessions started together to be answered."""
    errors: list[BaseException] = []

    def client() -> None:
        try:
            send_message(port, blocks)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    if errors or any(t.is_alive() for t in threads):
        raise RuntimeError(f"a client failed: {errors[:1]}")
    return time.monotonic() - start


def check_queue(home: Path, clients: int, blocks: int) -> None:
    """Every big message is in mess/, whole (CR LF stored as LF)."""
    expected = len(b"Subject: big\n\n") + blocks * len(BLOCK.replace(b"\r\n", b"\n"))
    sizes = [p.stat().st_size for p in (home / "queue" / "mess").rglob("*") if p.is_file()]
    big = [s for s in sizes if s > expected]
    if len(big) != clients:
        raise RuntimeError(f"{len(big)} of {clients} big messages are in the queue")


def _mb(kb: int) -> str:
    return f"{kb / 1024:7.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="clients at once (default 4)")
    parser.add_argument("--size", type=int, default=100, help="MB per message (default 100)")
    parser.add_argument("--split", action="store_true", help="a split home (root)")
    args = parser.parse_args()
    blocks = args.size * 16  # 64 KB blocks
    parent = Path(tempfile.mkdtemp(prefix="qmail-sim-memory-"))
    try:
        home = _make_home(parent, args.split)
        with serve(home) as (pid, port):
            send_message(port, 1)  # warm: every import of the receive path
            pids = tree(pid)
            names = {p: _name(p) for p in pids}
            idle = {p: _kb(p, "VmRSS") for p in pids}
            seconds = send_at_once(port, args.clients, blocks)
            peak = {p: _kb(p, "VmHWM") for p in pids}
            check_queue(home, args.clients, blocks)
        kind = "split home, queue service" if args.split else "one-user home, queue in-process"
        total = args.clients * args.size
        print(f"serve --smtp ({kind}): {args.clients} clients x {args.size} MB at once")
        print(f"  {total} MB received and queued in {seconds:.1f} s ({total / seconds:.1f} MB/s)")
        for p in pids:
            if idle[p] or peak[p]:
                grew = (peak[p] - idle[p]) / 1024
                print(
                    f"  {names[p]:<20} idle RSS {_mb(idle[p])}   peak RSS (VmHWM) "
                    f"{_mb(peak[p])}   (+{grew:.1f} MB)"
                )
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
