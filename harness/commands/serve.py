"""``qmail-sim serve``: the live server of a qmail home, in one asyncio loop.

Each ``--smtp``/``--pop3``/... option adds a :class:`Service`; all of them
start in the same event loop and stop together on SIGINT/SIGTERM. Services
are built by the functions in :data:`SERVICE_BUILDERS` (one per kind), so a
new kind adds its options in :func:`add_arguments` and one builder.

``--smtp HOST:PORT`` listens on loopback and runs qmail-smtpd's core for each
connection with the environment tcpserver would give it (TCPLOCALIP,
TCPLOCALPORT, TCPREMOTEIP, TCPREMOTEPORT, PROTO=TCP, plus ours), queueing in
this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from server.programs import ProgramContext, read_patches
from server.runtime import real_environ, real_runtime

HELP = "run the live server (SMTP, POP3, delivery) for a home"
DESCRIPTION = """\
Run the live server of the qmail home HOME in one process: each --smtp
HOST:PORT listens on a loopback address and speaks qmail-smtpd to every
connection, queueing into HOME/queue with fsync. Stops on SIGINT or SIGTERM.
Prints one line "listening smtp HOST:PORT" per service once it is ready (PORT
0 picks a free port, and the line shows it).
"""


@dataclass
class Service:
    """One thing the server runs: started together, closed together."""

    name: str
    start: Callable[[], Awaitable[str]]  # returns "HOST:PORT" (or a description)
    close: Callable[[], Awaitable[None]]


ServiceBuilder = Callable[[argparse.Namespace, ProgramContext, Mapping[str, str]], list[Service]]


def loopback_address(text: str) -> tuple[str, int]:
    """HOST:PORT (``[::1]:PORT`` for IPv6), refusing anything but loopback."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise argparse.ArgumentTypeError(f"{host} is not a loopback address")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{host!r} is not an IP address") from None
    return host, int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("home", metavar="HOME", type=Path, help="the qmail home to serve")
    parser.add_argument(
        "--smtp",
        action="append",
        default=[],
        type=loopback_address,
        metavar="HOST:PORT",
        help="serve qmail-smtpd on this loopback address (repeatable)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=40,
        metavar="N",
        help="at most N SMTP connections at once, as tcpserver -c (default 40)",
    )


def tcp_env(base: Mapping[str, str], writer: asyncio.StreamWriter) -> dict[str, str]:
    """What tcpserver -HR puts into a child's environment (tcp-environ(5))."""
    local = writer.get_extra_info("sockname")
    remote = writer.get_extra_info("peername")
    return {
        **base,
        "PROTO": "TCP",
        "TCPLOCALIP": str(local[0]),
        "TCPLOCALPORT": str(local[1]),
        "TCPREMOTEIP": str(remote[0]),
        "TCPREMOTEPORT": str(remote[1]),
    }


def _smtp_service(
    host: str, port: int, ctx: ProgramContext, base_env: Mapping[str, str], concurrency: int
) -> Service:
    from server.smtpd.live import handle

    limit = asyncio.Semaphore(concurrency)
    servers: list[asyncio.Server] = []
    queue_threads = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="qmail-queue")

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with limit:
            await handle(reader, writer, tcp_env(base_env, writer), ctx, queue_threads)

    async def start() -> str:
        server = await asyncio.start_server(connection, host, port)
        servers.append(server)
        bound = server.sockets[0].getsockname()
        return f"{host}:{bound[1]}" if ":" not in host else f"[{host}]:{bound[1]}"

    async def close() -> None:
        for server in servers:
            server.close()
            await server.wait_closed()
        queue_threads.shutdown(wait=True)

    return Service(name="smtp", start=start, close=close)


def smtp_services(
    args: argparse.Namespace, ctx: ProgramContext, env: Mapping[str, str]
) -> list[Service]:
    return [_smtp_service(h, p, ctx, env, args.concurrency) for h, p in args.smtp]


#: One builder per kind of service; other kinds (delivery, POP3) append theirs.
SERVICE_BUILDERS: list[ServiceBuilder] = [smtp_services]


def make_context(home: Path) -> ProgramContext:
    """The live server's world: real clock and files; one qp per queued message.

    qmail gives each qmail-queue run its own pid. In one process we count up
    from ours, so concurrent messages get distinct pid/ file names too.
    """
    pids = itertools.count(os.getpid() + 1)
    runtime = replace(real_runtime(), next_pid=lambda: next(pids))
    return ProgramContext(
        home=home,
        runtime=runtime,
        stderr=sys.stderr.buffer,
        patches=read_patches(home),
        inprocess=True,
    )


async def serve(services: list[Service]) -> None:
    """Start every service, report it, wait for SIGINT/SIGTERM, close them all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for service in services:
            where = await service.start()
            print(f"listening {service.name} {where}", flush=True)
        await stop.wait()
    finally:
        for service in services:
            with contextlib.suppress(Exception):
                await service.close()


def run(args: argparse.Namespace) -> int:
    home = args.home.resolve()
    if not (home / "control").is_dir():
        print(f"qmail-sim serve: {home} is not a qmail home", file=sys.stderr)
        return 111
    ctx = make_context(home)
    env = real_environ()
    services = [s for build in SERVICE_BUILDERS for s in build(args, ctx, env)]
    if not services:
        print("qmail-sim serve: nothing to serve (give --smtp HOST:PORT)", file=sys.stderr)
        return 100
    asyncio.run(serve(services))
    return 0
