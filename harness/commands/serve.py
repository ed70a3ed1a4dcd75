"""``qmail-sim serve``: the live server of a qmail home, in one asyncio loop.

Each ``--smtp``/``--pop3``/... option adds a :class:`Service`; all of them
start in the same event loop and stop together on SIGINT/SIGTERM. Services
are built by the functions in :data:`SERVICE_BUILDERS` (one per kind), so a
new kind adds its options in :func:`add_arguments` and one builder.

``--smtp HOST:PORT`` listens on loopback through our tcpserver
(:mod:`server.tcp.listener`: tcp-environ(5) variables, ``--rules`` as
``-x``, ``--concurrency`` as ``-c``, ``--localname`` as ``-l``) and runs
qmail-smtpd's core in this process for each connection, queueing here too.
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
from typing import TYPE_CHECKING

from server.programs import ProgramContext, read_patches
from server.runtime import real_environ, real_runtime

if TYPE_CHECKING:
    from server.tcp.listener import Handler, TcpServer

#: Seconds open connections get to finish when the server is told to stop.
CLOSE_GRACE = 5.0

HELP = "run the live server (SMTP, POP3, delivery) for a home"
DESCRIPTION = """\
Run the live server of the qmail home HOME in one process: each --smtp
HOST:PORT listens on a loopback address and speaks qmail-smtpd to every
connection, queueing into HOME/queue with fsync. Each --pop3 HOST:PORT runs
"qmail-popup ME checkpassword qmail-pop3d Maildir" for every connection, with
users and passwords from $QMAILSIM_PASSWORDS or HOME/.qmail-sim/passwords
(lines "user:password:home"). Stops on SIGINT or SIGTERM.
Prints one line "listening KIND HOST:PORT" per service once it is ready (PORT
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
    """IPv4 HOST:PORT, refusing anything but loopback (tcpserver is IPv4 only)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{host!r} is not an IPv4 address") from None
    if not address.is_loopback:
        raise argparse.ArgumentTypeError(f"{host} is not a loopback address")
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
        "--pop3",
        action="append",
        default=[],
        type=loopback_address,
        metavar="HOST:PORT",
        help="serve qmail-popup ME checkpassword qmail-pop3d Maildir on this loopback "
        "address (repeatable); users from $QMAILSIM_PASSWORDS or HOME/.qmail-sim/passwords",
    )
    parser.add_argument(
        "--send",
        action="store_true",
        help="also run qmail-send (local and remote delivery) in this process; "
        "its log lines go to stdout",
    )
    parser.add_argument(
        "--default-delivery",
        default="./Maildir/",
        metavar="DELIVERY",
        help="qmail-start's defaultdelivery for --send (default ./Maildir/)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="CDB",
        help="follow the tcprules cdb for SMTP clients, as tcpserver -x (e.g. RELAYCLIENT)",
    )
    parser.add_argument(
        "--localname",
        metavar="NAME",
        help="TCPLOCALHOST for SMTP connections, as tcpserver -l (default: unset)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=40,
        metavar="N",
        help="at most N SMTP connections at once, as tcpserver -c (default 40)",
    )


def _smtp_service(
    host: str, port: int, ctx: ProgramContext, base_env: Mapping[str, str], args: argparse.Namespace
) -> Service:
    from server.smtpd.live import handle

    servers: list[TcpServer] = []
    queue_threads = ThreadPoolExecutor(
        max_workers=args.concurrency, thread_name_prefix="qmail-queue"
    )

    async def connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        await handle(reader, writer, env, ctx, queue_threads)

    async def start() -> str:
        return await _listen(servers, host, port, connection, args.rules, base_env, args)

    async def close() -> None:
        await _close_all(servers)
        queue_threads.shutdown(wait=True)

    return Service(name="smtp", start=start, close=close)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _listen(
    servers: list[TcpServer],
    host: str,
    port: int,
    handler: Handler,
    rules: Path | None,
    base_env: Mapping[str, str],
    args: argparse.Namespace,
) -> str:
    """Start a tcpserver-like listener as --concurrency and --localname say; its address."""
    from server.tcp.listener import serve as tcp_serve

    server = await tcp_serve(
        host,
        port,
        handler,
        rules,
        args.concurrency,
        base_env=base_env,
        local_name=args.localname,
        log=_log,
        # tcpserver -D: nothing a client can see changes, and replies are
        # not held back by Nagle's algorithm waiting for an ACK.
        nodelay=True,
    )
    servers.append(server)
    return f"{host}:{server.port}"


async def _close_all(servers: list[TcpServer]) -> None:
    for server in servers:
        # Connections still open get CLOSE_GRACE seconds to finish.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.close(), CLOSE_GRACE)


def smtp_services(
    args: argparse.Namespace, ctx: ProgramContext, env: Mapping[str, str]
) -> list[Service]:
    return [_smtp_service(h, p, ctx, env, args) for h, p in args.smtp]


def _pop3_service(
    host: str, port: int, ctx: ProgramContext, base_env: Mapping[str, str], args: argparse.Namespace
) -> Service:
    from server.pop3.live import Pop3Service

    pop3 = Pop3Service(ctx)
    servers: list[TcpServer] = []

    async def start() -> str:
        return await _listen(servers, host, port, pop3.connection, None, base_env, args)

    async def close() -> None:
        # Hang up first: a session's worker thread waits on its client.
        await pop3.aclose()
        await _close_all(servers)

    return Service(name="pop3", start=start, close=close)


def pop3_services(
    args: argparse.Namespace, ctx: ProgramContext, env: Mapping[str, str]
) -> list[Service]:
    return [_pop3_service(h, p, ctx, env, args) for h, p in args.pop3]


def send_services(
    args: argparse.Namespace, ctx: ProgramContext, env: Mapping[str, str]
) -> list[Service]:
    """qmail-send in a thread of its own; closing the service is its SIGTERM."""
    if not getattr(args, "send", False):
        return []
    import threading

    from server.send.program import SignalRouter, line_writer, run_send

    router = SignalRouter()
    log = line_writer(sys.stdout.buffer)
    thread = threading.Thread(
        target=run_send,
        args=(ctx, env, log),
        kwargs={"default_delivery": args.default_delivery, "router": router},
        name="qmail-send",
    )

    async def start() -> str:
        thread.start()
        return "qmail-send"

    async def close() -> None:
        router.handle(signal.SIGTERM, None)
        await asyncio.to_thread(thread.join)

    return [Service(name="delivery", start=start, close=close)]


#: One builder per kind of service; other kinds (delivery, POP3) append theirs.
SERVICE_BUILDERS: list[ServiceBuilder] = [smtp_services, pop3_services, send_services]


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
