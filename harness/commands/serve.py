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
import ipaddress
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from server.privsep import QmailIds, privileged
from server.programs import ProgramContext, read_patches
from server.runtime import PidCounter, real_environ, real_runtime
from server.strerr import error_str

if TYPE_CHECKING:
    from server.send.program import SignalRouter
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


def loopback_address(text: str) -> tuple[str, int]:
    """IPv4 HOST:PORT, refusing anything but loopback (tcpserver is IPv4 only)."""
    host, port = ipv4_address(text)
    if not ipaddress.IPv4Address(host).is_loopback:
        raise argparse.ArgumentTypeError(f"{host} is not a loopback address")
    return host, port


def ipv4_address(text: str) -> tuple[str, int]:
    """IPv4 HOST:PORT (tcpserver is IPv4 only); :func:`outside_loopback` decides the rest."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{host!r} is not an IPv4 address") from None
    return str(address), int(port)


def outside_loopback(args: argparse.Namespace) -> int | None:
    """Loopback only, unless --allow-nonloopback: then one warning line per
    address. The exit code when refused (2, a usage error), else None."""
    for host, port in [*args.smtp, *args.pop3]:
        if ipaddress.IPv4Address(host).is_loopback:
            continue
        if not args.allow_nonloopback:
            print(
                f"qmail-sim serve: {host} is not a loopback address"
                " (give --allow-nonloopback to serve on it)",
                file=sys.stderr,
            )
            return 2
        print(
            f"qmail-sim serve: warning: serving on {host}:{port}, not loopback:"
            " whoever can reach it can talk to this home",
            file=sys.stderr,
            flush=True,
        )
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("home", metavar="HOME", type=Path, help="the qmail home to serve")
    parser.add_argument(
        "--smtp",
        action="append",
        default=[],
        type=ipv4_address,
        metavar="HOST:PORT",
        help="serve qmail-smtpd on this loopback address (repeatable)",
    )
    parser.add_argument(
        "--pop3",
        action="append",
        default=[],
        type=ipv4_address,
        metavar="HOST:PORT",
        help="serve qmail-popup ME checkpassword qmail-pop3d Maildir on this loopback "
        "address (repeatable); users from $QMAILSIM_PASSWORDS or HOME/.qmail-sim/passwords",
    )
    for kind, program in (("qmtp", "qmail-qmtpd"), ("qmqp", "qmail-qmqpd")):
        parser.add_argument(
            f"--{kind}",
            action="append",
            default=[],
            type=loopback_address,
            metavar="HOST:PORT",
            help=f"serve {program} on this loopback address (repeatable; "
            f"{'--rules applies, as for --smtp' if kind == 'qmtp' else 'no --rules'})",
        )
    parser.add_argument(
        "--allow-nonloopback",
        action="store_true",
        help="let --smtp/--pop3 name an address that is not loopback (e.g. 0.0.0.0 in a "
        "CI service container); a warning line says so",
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
    # serve_split's children: a queue service as qmailq, and qmail-smtpd as
    # qmaild queueing through it (not for users: serve starts them itself)
    parser.add_argument("--queue-service", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--queue-socket", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=40,
        metavar="N",
        help="at most N connections at once on each listener, as tcpserver -c (default 40)",
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
        return await _listen("smtp", servers, host, port, connection, args.rules, base_env, args)

    async def close() -> None:
        await _close_all(servers)
        queue_threads.shutdown(wait=True)

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
        )
    except OSError as exc:  # tcpserver: "fatal: unable to bind: address already used"
        why = error_str(exc.errno)
        raise StartFailed(f"qmail-sim serve: unable to bind {kind} {host}:{port}: {why}") from exc
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
    """qmail-send in a thread of its own; closing the service is its SIGTERM."""
    if not getattr(args, "send", False):
        return []
    send = _SendThread(ctx, env, args.default_delivery)
    forward = send.router.handle
    return [
        Service(
            name="delivery",
            start=send.start,
            close=send.close,
            # the process gets the signals qmail-send would; its thread cannot
            signals={
                signal.SIGALRM: lambda: forward(signal.SIGALRM, None),
                signal.SIGHUP: lambda: forward(signal.SIGHUP, None),
            },
            ended=send.ended,
        )
    ]


class _SendThread:
    """run_send in a thread: started once its loop runs, ended when it returns."""

    def __init__(self, ctx: ProgramContext, env: Mapping[str, str], delivery: str) -> None:
        from server.send.program import SignalRouter

        self.ctx = ctx
        self.env = env
        self.delivery = delivery
        self.router: SignalRouter = SignalRouter(on_attach=self._attached)
        self.thread = threading.Thread(target=self._run, name="qmail-send")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: asyncio.Future[int] | None = None
        self._ended: asyncio.Future[int] | None = None

    def _settle(self, future: asyncio.Future[int] | None, value: int) -> None:
        """Complete ``future`` from qmail-send's thread (once; the loop may be gone)."""
        loop = self._loop
        if loop is None or future is None:
            return

        def set_value() -> None:
            if not future.done():
                future.set_result(value)

        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(set_value)

    def _attached(self) -> None:
        self._settle(self._started, 0)

    def _run(self) -> None:
        from server.send.program import line_writer, run_send

        code = EXIT_TEMP
        try:
            log = line_writer(sys.stdout.buffer)
            code = run_send(
                self.ctx, self.env, log, default_delivery=self.delivery, router=self.router
            )
        finally:
            self._settle(self._ended, code)

    async def start(self) -> str:
        """Wait until qmail-send runs its loop, or has given up (its log says why)."""
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.create_future()
        self._ended = self._loop.create_future()
        self.thread.start()
        await asyncio.wait([self._started, self._ended], return_when=asyncio.FIRST_COMPLETED)
        if not self._started.done():
            raise StartFailed(None, self._ended.result() or EXIT_TEMP)
        return "qmail-send"

    async def ended(self) -> int:
        assert self._ended is not None
        return await asyncio.shield(self._ended)

    async def close(self) -> None:
        if self.thread.is_alive():  # a TERM after its loop has ended would go nowhere
            self.router.handle(signal.SIGTERM, None)
            await asyncio.to_thread(self.thread.join)


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
    return asyncio.run(serve(services, note))


def _queue_service(home: Path, path: Path) -> int:
    """The queue service of a split serve (server.queue.service), on ``path``."""
    import socket

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
        with contextlib.suppress(OSError):
            while sys.stdin.buffer.read(4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
