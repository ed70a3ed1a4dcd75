"""Remote deliveries per second: qmail-remote in-process to an aiosmtpd sink on loopback.

    python benchmarks/remote.py [--deliveries N] [--concurrency 1 20] [--slow 0.5]

Makes a throw-away qmail home and runs N deliveries through
``server.remote.rspawn.RemoteChannel`` — the path qmail-send takes — with 1
and with 20 at once (concurrencyremote). Every delivery does what
qmail-remote does: the CNAME lookup (ANY), the MX lookup and the MX host's A
lookup against a fake DNS on 127.0.0.1 (real UDP, dnslib's wire format) — or,
with ``--dns inprocess``, the same zone answered in-process as the simulator
does —
lock/tcpto, a
real TCP connection to an aiosmtpd sink and the SMTP dialogue with a message
of about 2 KB. The fake DNS and the sinks run in a process of their own, so
they never take the measured process's interpreter lock. Port 25 of the
MX's address is mapped to the sink's port, as the live target does when it
cannot bind port 25. Loopback only.

``--slow S`` (default 0.5) then times peers that take S seconds to answer
the final dot: one delivery alone, max(--concurrency) of them one at a time,
and all of them at once, which should take about as long as one (qmail-send
runs up to concurrencyremote qmail-remotes at once; the sink's waits are
asyncio's, so the fake peer is never what serialises them).

Reference, measured in the same run for each concurrency: Python's
``smtplib`` sending the same message (same bytes on the wire, CRLF) from the
same number of threads to the same aiosmtpd sink, one connection per
message with HELO, MAIL, RCPT, DATA and QUIT as qmail-remote does, but no
DNS, no locks, no tcpto and no qmail-send job plumbing. That is the least a
Python SMTP client pays for the same dialogue against the same sink, so the
ratio ours/reference is the share of it qmail-remote's logic leaves. Each
concurrency's reference is measured just before our figures for it, so a
change in the machine's load (other processes may run tests at the same
time) touches both; the figures are noisy all the same.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from dnslib import QTYPE, RR, DNSRecord
from dnslib.server import BaseResolver

from server.dns.transport import SocketDnsTransport
from server.home import setup
from server.programs import ProgramContext
from server.remote.connect import SocketConnection, SocketConnector
from server.remote.rspawn import RemoteChannel
from server.runtime import real_runtime
from server.spawn import DeliveryJob

HOST = "127.0.0.1"
ZONE = "bench.example. 60 IN MX 10 mx.bench.example.\nmx.bench.example. 60 IN A 127.0.0.1\n"
MESSAGE = b"Subject: bench\n\n" + b"x" * 75 + b"\n" * 1 + (b"y" * 75 + b"\n") * 26
SENDER, RECIPIENT, HELO = "a@me.example", "b@bench.example", "me.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.records = list(RR.fromZone(ZONE))

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).lower()
        for rr in self.records:
            if str(rr.rname).lower() == name and request.q.qtype in (rr.rtype, QTYPE.ANY):
                reply.add_answer(rr)
        return reply


class InProcessDns:
    """The same zone answered in-process (the simulator's way), no DNS sockets."""

    def __init__(self) -> None:
        self.resolver = ZoneResolver()

    def exchange(
        self, server: tuple[str, int], query: bytes, *, tcp: bool, timeout: float
    ) -> bytes:
        data: bytes = self.resolver.resolve(DNSRecord.parse(query), None).pack()
        return data


class Sink:
    """aiosmtpd's handler; ``slow`` seconds before each reply to the final dot
    (a slow peer: asyncio waits, so one sink serves any number at once)."""

    def __init__(self, slow: float = 0.0) -> None:
        self.slow = slow

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.slow:
            await asyncio.sleep(self.slow)
        return "250 OK"


def serve_peers(dns_port: int, fast_port: int, slow_port: int, slow: float) -> None:
    """The fake DNS and two sinks (fast, and ``slow``), in a process of their own
    so that they never share the measured process's interpreter lock."""
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind((HOST, dns_port))
    threading.Thread(target=answer_dns, args=(dns,), daemon=True).start()
    sinks = [
        Controller(Sink(), hostname=HOST, port=fast_port),
        Controller(Sink(slow), hostname=HOST, port=slow_port),
    ]
    for sink in sinks:
        sink.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes the pipe
    for sink in sinks:
        sink.stop()
    dns.close()


def answer_dns(sock: socket.socket) -> None:
    """The zone over UDP, one datagram after another: dnslib's DNSServer starts
    a thread per query, which made the fake DNS the bottleneck at concurrency 20."""
    resolver = ZoneResolver()
    while True:
        try:
            query, client = sock.recvfrom(512)
        except OSError:
            return
        sock.sendto(resolver.resolve(DNSRecord.parse(query), None).pack(), client)


def start_peers(slow: float) -> tuple[subprocess.Popen[str], int, int, int]:
    ports = free_port(), free_port(), free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-peers", *map(str, ports), str(slow)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        sys.exit("the fake DNS and peers did not start")
    return (child, *ports)


class PortMap(SocketConnector):
    def __init__(self, port: int) -> None:
        super().__init__(60.0)
        self.port = port

    def connect(
        self, ip: str, port: int, *, timeout: float, local_ip: str | None = None
    ) -> SocketConnection:
        return super().connect(ip, self.port if port == 25 else port, timeout=timeout)


def run(channel: RemoteChannel, message: Path, deliveries: int, concurrency: int) -> float:
    job = DeliveryJob(msgid=1, message=message, sender=SENDER, recipient=RECIPIENT)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        reports = list(pool.map(lambda _: channel.deliver(job), range(deliveries)))
    elapsed = time.perf_counter() - start
    bad = [r for r in reports if not r.startswith(b"K")]
    if bad:
        sys.exit(f"{len(bad)} deliveries failed, e.g. {bad[0]!r}")
    return deliveries / elapsed


def smtplib_rate(port: int, deliveries: int, concurrency: int) -> float:
    """Deliveries/s for smtplib, one connection per message, ``concurrency`` threads."""
    wire = MESSAGE.replace(b"\n", b"\r\n")  # what qmail-remote puts on the wire

    def send(_: int) -> None:
        with smtplib.SMTP(HOST, port, local_hostname=HELO, timeout=60) as smtp:
            smtp.helo(HELO)  # qmail-remote says HELO, never EHLO
            smtp.sendmail(SENDER, [RECIPIENT], wire)
        # leaving the with-block sends QUIT and closes the connection

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, range(deliveries)))  # any failure raises here
    return deliveries / (time.perf_counter() - start)


def slow_peers(channel: RemoteChannel, message: Path, peers: int, slow: float) -> None:
    """``peers`` deliveries to peers that each take ``slow`` seconds to answer the
    dot: one alone, then all of them one at a time and all at once. Served
    concurrently, they should take about as long as one."""
    one = 1 / run(channel, message, 1, 1)
    serial = peers / run(channel, message, peers, 1)
    together = peers / run(channel, message, peers, peers)
    print(
        f"slow peers ({slow:g} s before the dot's 250): one delivery {one:.3f} s; "
        f"{peers} one at a time {serial:.3f} s; {peers} at concurrency {peers} "
        f"{together:.3f} s = {together / one:.2f} x one"
    )


def main() -> None:
    if sys.argv[1:2] == ["--serve-peers"]:
        dns_port, fast_port, slow_port = map(int, sys.argv[2:5])
        serve_peers(dns_port, fast_port, slow_port, float(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--dns", choices=["dnslib", "inprocess"], nargs="+",
                        default=["dnslib", "inprocess"])  # fmt: skip
    parser.add_argument("--slow", type=float, default=0.5, metavar="SECONDS",
                        help="also time peers this slow to answer the dot, one and "
                        "max(--concurrency) at once (0: skip)")  # fmt: skip
    args = parser.parse_args()
    peers, dns_port, smtp_port, slow_port = start_peers(args.slow)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            setup(home, me="me.example")
            resolv = Path(tmp) / "resolv.conf"
            resolv.write_text(f"nameserver {HOST}:{dns_port}\n")
            message = Path(tmp) / "message"
            message.write_bytes(MESSAGE)
            ctx = ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())
            channels: dict[str, tuple[RemoteChannel, RemoteChannel]] = {}
            for kind in args.dns:
                channels[kind] = tuple(  # type: ignore[assignment]
                    RemoteChannel(
                        ctx,
                        dns=SocketDnsTransport() if kind == "dnslib" else InProcessDns(),
                        connector=PortMap(port),
                        resolvconf=resolv,
                        local_ips=["192.0.2.1"],
                    )
                    for port in (smtp_port, slow_port)
                )
                run(channels[kind][0], message, 20, 4)  # warm up
            smtplib_rate(smtp_port, 20, 4)  # warm up
            for concurrency in args.concurrency:
                reference = smtplib_rate(smtp_port, args.deliveries, concurrency)
                print(
                    f"reference (smtplib, no DNS) concurrency {concurrency:3d}: "
                    f"{reference:8.1f} deliveries/s"
                )
                for kind, (channel, _) in channels.items():
                    rate = run(channel, message, args.deliveries, concurrency)
                    print(
                        f"DNS {kind:9s} concurrency {concurrency:3d}: "
                        f"{rate:8.1f} remote deliveries/s, "
                        f"ratio ours/reference: {rate / reference:.2f}"
                    )
            if args.slow > 0:
                for kind, (_, slow_channel) in channels.items():
                    print(f"DNS {kind}:", end=" ")
                    slow_peers(slow_channel, message, max(args.concurrency), args.slow)
    finally:
        peers.communicate("")


if __name__ == "__main__":
    main()
