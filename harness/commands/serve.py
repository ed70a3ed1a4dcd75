"""``qmail-sim serve``: the live server of a qmail home, in one asyncio loop.

Each ``--smtp``/``--pop3``/... option adds a :class:`Service`; all of them
start in the same event loop and stop together on SIGINT/SIGTERM. Services
are built by the functions in :data:`SERVICE_BUILDERS` (one per kind), so a
new kind adds its options in :func:`add_arguments` and one builder.

``--smtp HOST:PORT`` listens on loopback through our tcpserver
(:mod:`server.tcp.listener`: tcp-environ(5) variables, ``--rules`` as
``-x``, ``--concurrency`` as ``-c``, ``--localname`` as ``-l``) and runs
qmail-smtpd's core in this process for each connection, queueing here too.

Starting is all or nothing: every listener binds (and qmail-send takes its
mutex) before the first ``listening`` line, and a service that cannot start
ends the command with one line and a non-zero exit. qmail-send stopping on
its own ends it too. While running, a service may answer signals of its
own: ``--send`` takes ALRM and HUP as qmail-send does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness.commands.serve_args import add_arguments as add_arguments
from harness.commands.serve_args import outside_loopback
from server.privsep import QmailIds, privileged
from server.programs import ProgramContext, read_patches
from server.runtime import PidCounter, favour_waiting_threads, real_environ, real_runtime
from server.strerr import error_str

if TYPE_CHECKING:
    from server.tcp.listener import Handler, TcpServer

#: Seconds open connections get to finish when the server is told to stop.
CLOSE_GRACE = 5.0
#: The exit code when something cannot start or stops by itself (tcpserver's
#: and qmail-send's for a fatal error).
EXIT_TEMP = 111

HELP = "run the live server (SMTP, POP3, delivery) for a home"
DESCRIPTION = """\
Run the live server of the qmail home HOME in one process: each --smtp
HOST:PORT listens on a loopback address (another, such as 0.0.0.0 in a CI
service container, only with --allow-nonloopback, which prints a warning
line) and speaks qmail-smtpd to every
connection, queueing into HOME/queue with fsync. Each --pop3 HOST:PORT runs
"qmail-popup ME checkpassword qmail-pop3d Maildir" for every connection, with
users and passwords from $QMAILSIM_PASSWORDS or HOME/.qmail-sim/passwords
(lines "user:password:home"). Stops on SIGINT or SIGTERM; with --send,
SIGALRM and SIGHUP go to qmail-send (retry now, reread locals and
virtualdomains). Prints one line "listening KIND HOST:PORT" per service once
all are ready (PORT 0 picks a free port, and the line shows it); if any cannot
start (a port in use, qmail-send already running), says why and exits 111.

Each --qmtp and --qmqp HOST:PORT does as --smtp with qmail-qmtpd and
qmail-qmqpd (--rules applies to QMTP only).
"""


@dataclass
class Service:
    """One thing the server runs: started together, closed together."""

    name: str
    start: Callable[[], Awaitable[str]]  # returns "HOST:PORT" (or a description)
    close: Callable[[], Awaitable[None]]
    #: what the service does on a signal while the server runs
    signals: Mapping[int, Callable[[], None]] = field(default_factory=dict)
    #: completes with an exit code if the service stops by itself
    ended: Callable[[], Awaitable[int]] | None = None


class StartFailed(Exception):
    """A service could not start: ``line`` says why (None when it has said so
    itself, as qmail-send does in its log), ``code`` is the exit code."""

    def __init__(self, line: str | None, code: int = EXIT_TEMP) -> None:
        super().__init__(line or f"exit {code}")
        self.line = line
        self.code = code


ServiceBuilder = Callable[[argparse.Namespace, ProgramContext, Mapping[str, str]], list[Service]]


def _smtp_service(
    host: str, port: int, ctx: ProgramContext, base_env: Mapping[str, str], args: argparse.Namespace
) -> Service:
    from server.queue.service_async import ServicePool
    from server.smtpd.live import handle

    servers: list[TcpServer] = []
    queue_threads = ThreadPoolExecutor(
        max_workers=args.concurrency, thread_name_prefix="qmail-queue"
    )
    # a split serve's qmail-smtpd queues through the service from the loop
    pool = None if ctx.queue_socket is None else ServicePool(ctx.queue_socket, args.concurrency)

    async def connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        await handle(reader, writer, env, ctx, queue_threads, pool)

    async def start() -> str:
        return await _listen("smtp", servers, host, port, connection, args.rules, base_env, args)

    async def close() -> None:
        await _close_all(servers)
        queue_threads.shutdown(wait=True)
        if pool is not None:
            pool.close()

    return Service(name="smtp", start=start, close=close)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _listen(
    kind: str,
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

    try:
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
            listening=_inherited(args, "listen_fd") if kind == "smtp" else None,
            handoff_to=_inherited(args, "handoff_fd") if kind == "smtp" else None,
            handoff_from=_inherited(args, "handed_fd") if kind == "smtp" else None,
        )
    except OSError as exc:  # tcpserver: "fatal: unable to bind: address already used"
        why = error_str(exc.errno)
        raise StartFailed(f"qmail-sim serve: unable to bind {kind} {host}:{port}: {why}") from exc
    servers.append(server)
    return f"{host}:{server.port}"


def _inherited(args: argparse.Namespace, option: str) -> socket.socket | None:
    """A socket a split serve (serve_split) made and passed on: --listen-fd,
    the listening socket; --handoff-fd and --handed-fd, the two ends of the
    pair over which its first qmail-smtpd serve hands sessions to the second."""
    fd = getattr(args, option, None)
    return None if fd is None else socket.socket(fileno=fd)


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

    # A session holds its thread while its client is connected: one thread per
    # connection tcpserver -c allows, or idle clients shut out the rest.
    sessions = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="pop3")
    pop3 = Pop3Service(ctx, executor=sessions)
    servers: list[TcpServer] = []

    async def start() -> str:
        return await _listen("pop3", servers, host, port, pop3.connection, None, base_env, args)

    async def close() -> None:
        # Hang up first: a session's worker thread waits on its client.
        await pop3.aclose()
        await _close_all(servers)
        sessions.shutdown(wait=False)

    return Service(name="pop3", start=start, close=close)


def pop3_services(
    args: argparse.Namespace, ctx: ProgramContext, env: Mapping[str, str]
) -> list[Service]:
    return [_pop3_service(h, p, ctx, env, args) for h, p in args.pop3]


def send_services(
    args: argparse.Namespace, ctx: ProgramContext, env: Mapping[str, str]
) -> list[Service]:
    """--send (harness.commands.serve_send)."""
    from harness.commands.serve_send import send_services as build

    return build(args, ctx, env)


#: One builder per kind of service; other kinds (delivery, POP3) append theirs.
SERVICE_BUILDERS: list[ServiceBuilder] = [smtp_services, pop3_services, send_services]


def netstring_services(
    args: argparse.Namespace, ctx: ProgramContext, env: Mapping[str, str]
) -> list[Service]:
    """--qmtp and --qmqp (harness.commands.serve_netstrings)."""
    from harness.commands.serve_netstrings import netstring_services as build

    return build(args, ctx, env)


SERVICE_BUILDERS.insert(SERVICE_BUILDERS.index(send_services), netstring_services)


def make_context(home: Path) -> ProgramContext:
    """The live server's world: real clock and files; one qp per queued message.

    qmail gives each qmail-queue run its own pid. In one process we count up
    from ours, so concurrent messages get distinct pid/ file names too.
    """
    runtime = replace(real_runtime(), next_pid=PidCounter(os.getpid() + 1))
    return ProgramContext(
        home=home,
        runtime=runtime,
        stderr=sys.stderr.buffer,
        patches=read_patches(home),
        inprocess=True,
    )


async def serve(services: list[Service], note: str | None = None) -> int:
    """Start every service, then report them all (and ``note``, on stderr); run
    until SIGINT/SIGTERM or until a service stops by itself; close them all.
    The exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for signum, handlers in _service_signals(services).items():
        loop.add_signal_handler(signum, _call_all, handlers)
    started: list[Service] = []
    try:
        lines = []
        try:
            for service in services:
                where = await service.start()
                started.append(service)
                lines.append(f"listening {service.name} {where}")
        except StartFailed as exc:
            if exc.line is not None:
                print(exc.line, file=sys.stderr, flush=True)
            return exc.code
        for line in lines:
            print(line, flush=True)
        if note is not None:
            print(note, file=sys.stderr, flush=True)
        return await _until_stopped(stop, started)
    finally:
        for service in started:
            with contextlib.suppress(Exception):
                await service.close()


def _service_signals(services: list[Service]) -> dict[int, list[Callable[[], None]]]:
    handlers: dict[int, list[Callable[[], None]]] = {}
    for service in services:
        for sig, handler in service.signals.items():
            handlers.setdefault(sig, []).append(handler)
    return handlers


def _call_all(handlers: list[Callable[[], None]]) -> None:
    for handler in handlers:
        handler()


async def _until_stopped(stop: asyncio.Event, services: list[Service]) -> int:
    """0 after SIGINT/SIGTERM; non-zero, with a line, if a service ended first."""
    endings = {
        asyncio.ensure_future(service.ended()): service
        for service in services
        if service.ended is not None
    }
    stopping = asyncio.ensure_future(stop.wait())
    done, pending = await asyncio.wait([stopping, *endings], return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if stopping in done:
        return 0
    task = next(iter(done))
    code = task.result()
    print(f"qmail-sim serve: {endings[task].name} stopped (exit {code})", file=sys.stderr)
    return code or EXIT_TEMP


def run(args: argparse.Namespace) -> int:
    refused = outside_loopback(args)
    if refused is not None:
        return refused
    favour_waiting_threads()
    home = args.home.resolve()
    if not (home / "control").is_dir():
        print(f"qmail-sim serve: {home} is not a qmail home", file=sys.stderr)
        return 111
    if args.queue_service is not None or args.queue_socket is not None:
        _stop_with_parent()
    if args.queue_service is not None:
        return _queue_service(home, args.queue_service)
    ids = QmailIds.of_home(home)
    note = None
    if privileged() and args.queue_socket is None:
        if ids is not None:
            from harness.commands.serve_split import run_split

            return run_split(args, ids)
        note = (
            f"qmail-sim serve: {home} is a one-user home: as root, qmail-smtpd and qmail-send "
            "run as root (deliveries as each user); a split home runs each as qmail's user"
        )
    ctx = make_context(home)
    if args.queue_socket is not None:
        ctx.queue_socket = args.queue_socket
    env = real_environ()
    services = [s for build in SERVICE_BUILDERS for s in build(args, ctx, env)]
    if not services:
        print("qmail-sim serve: nothing to serve (give --smtp HOST:PORT)", file=sys.stderr)
        return 100
    return run_loop(serve(services, note))


def run_loop(main: Coroutine[object, object, int]) -> int:
    """Run ``main`` in uvloop's event loop when it is installed (the ``fast``
    extra), else asyncio's. uvloop's loop spends about a quarter less time
    per SMTP reply (benchmarks/receive.py); nothing a client sees changes.
    The split serve's parent keeps asyncio's loop: it starts its children
    with subprocess's user and group, which uvloop's loop does not take."""
    try:
        uvloop = importlib.import_module("uvloop")  # optional: typed or not, installed or not
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _queue_service(home: Path, path: Path) -> int:
    """The queue service of a split serve (server.queue.service), on ``path``."""
    from server.queue.service import QueueService

    ids = QmailIds.of_home(home)
    if ids is None:
        print(f"qmail-sim serve: {home} is not a split home", file=sys.stderr)
        return 111
    os.umask(0o033)  # qmail-queue.c: umask(033)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o777)  # anyone may queue, as anyone may run qmail-queue
        sock.listen(128)
    except OSError as exc:
        print(f"qmail-sim serve: unable to bind {path}: {error_str(exc.errno)}", file=sys.stderr)
        return 111
    print(f"listening queue {path}", flush=True)
    QueueService(make_context(home), ids, real_environ()).serve_forever(sock)
    return 0


def _stop_with_parent() -> None:
    """A child of a split serve (serve_split): its standard input is a pipe the
    parent never writes; end of file means the parent is gone, so stop too."""

    def watch() -> None:
        # os.read on the descriptor, not sys.stdin's buffer: a daemon thread
        # blocked holding that buffer's lock aborts the interpreter at exit
        # ("could not acquire lock for <stdin> at interpreter shutdown")
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
