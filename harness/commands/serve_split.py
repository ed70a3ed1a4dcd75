"""``qmail-sim serve`` as root on a split home: each part under qmail's user for it.

qmail runs qmail-smtpd as qmaild (``tcpserver -u qmaild -g nofiles``),
qmail-queue as qmailq (setuid), qmail-send and its helpers as qmail-start
makes them, and qmail-popup as root until checkpassword becomes the user.
Run as root on a split home, ``serve`` keeps that split with long-running
processes instead of one process per message:

- ``--send``: ``HOME/bin/qmail-start DELIVERY``, which drops each part to
  its user (server.send.start) and whose log is ours; ALRM, HUP and TERM go
  to qmail-send (qmail-start becomes it);
- ``--smtp``: a ``serve`` of its own as qmaild:nofiles for each listener,
  queueing through a queue service (server.queue.service) that runs as
  qmailq:qmail and words each message by its caller's uid, as the setuid
  qmail-queue does;
- ``--qmtp``, ``--qmqp``: as ``--smtp``, qmail-qmtpd's and qmail-qmqpd's
  cores as qmaild through the same queue service;
- ``--pop3``: in this process, as qmail-popup runs as root; checkpassword
  runs qmail-pop3d as the user (server.pop3.checkpassword).

Children are started with their uid and gid set by the kernel between fork
and exec (subprocess's ``user``/``group``), so nothing else here runs
privileged. A child announces itself with a ``listening`` line; one that
cannot start says why and the whole command stops, as ``serve`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

from harness.commands.serve import (
    EXIT_TEMP,
    Service,
    StartFailed,
    make_context,
    pop3_services,
    serve,
)
from server.privsep import QmailIds, spawn_as
from server.runtime import real_environ
from server.strerr import error_str
from server.tcp.listener import listen_on

#: how long a child has to say it listens
START_TIMEOUT = 60.0


class _Child:
    """A part of the server as a process of its own, under a given user."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        ids: tuple[int, int] | None,
        ready: str,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.argv = argv
        self.ids = ids
        self.ready = ready  # the start of the line that says it runs
        self.env = env
        self.pass_fds = pass_fds
        self.proc: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            # a pipe we never write: the child stops when it reads end of
            # file, so it does not outlive this process (even killed by -9)
            stdin=asyncio.subprocess.PIPE
            if self.ready == "listening "
            else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=self.env,
            start_new_session=True,  # our SIGINT is ours to pass on
            pass_fds=self.pass_fds,
            **spawn_as(self.ids),
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        text = line.decode("latin-1").rstrip("\n")
        if not text.startswith(self.ready):
            if text:
                print(text, flush=True)  # the child's own word on why (qmail-send's alert)
            code = await self.proc.wait()
            raise StartFailed(None, code or EXIT_TEMP)
        if self.ready == "listening ":
            where = text.split(" ", 2)[-1]
        else:
            print(text, flush=True)  # qmail-send's first log line
            where = "qmail-send"
        self._relay = asyncio.ensure_future(self._copy())
        return where

    async def _copy(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    async def ended(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def close(self) -> None:
        self.signal(signal.SIGTERM)
        if self.proc is not None:
            await self.proc.wait()
        if self._relay is not None:
            await self._relay

    def service(self, *signals: int) -> Service:
        return Service(
            name=self.name,
            start=self.start,
            close=self.close,
            signals={sig: functools.partial(self.signal, sig) for sig in signals},
            ended=self.ended,
        )


def _serve_argv(home: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "serve", str(home), *options]


def _smtp_options(args: argparse.Namespace) -> list[str]:
    options = ["--concurrency", str(args.concurrency)]
    if args.rules is not None:
        options += ["--rules", str(args.rules.resolve())]
    if args.localname is not None:
        options += ["--localname", args.localname]
    if getattr(args, "allow_nonloopback", False):  # the parent has warned
        options.append("--allow-nonloopback")
    return options


def _smtp_group(
    home: Path,
    host: str,
    port: int,
    queue: str,
    listening: socket.socket,
    args: argparse.Namespace,
    ids: QmailIds,
) -> Service:
    """Two serves as qmaild:nofiles for one --smtp address, as one service.

    The first accepts on ``listening`` under tcpserver's -c limit and serves
    the sessions; while it serves more than it has handed over, it hands a
    new one to the second over a socket pair (server.tcp.listener,
    Config.handoff_to). A lone client is so always served by one warm
    process, and many by both, so that both CPUs run SMTP sessions.
    """
    fd = listening.fileno()
    first_end, second_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ends = {"--handoff-fd": first_end.fileno(), "--handed-fd": second_end.fileno()}
    children = []
    for option, end in ends.items():
        options = [*_smtp_options(args), "--listen-fd", str(fd), option, str(end)]
        argv = _serve_argv(home, "--smtp", f"{host}:{port}", "--queue-socket", queue, *options)
        ids_ = (ids.qmaild, ids.nofiles)
        children.append(_Child("smtp", argv, ids_, "listening ", pass_fds=(fd, end)))

    async def start() -> str:
        try:
            wheres = [await child.start() for child in children]
        finally:  # the children have their own copies
            first_end.close()
            second_end.close()
        return wheres[0]

    async def close() -> None:
        await asyncio.gather(*(child.close() for child in children))

    async def ended() -> int:
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(child.ended()) for child in children],
            return_when=asyncio.FIRST_COMPLETED,
        )
        return next(iter(done)).result()

    return Service(name="smtp", start=start, close=close, ended=ended)


def run_split(args: argparse.Namespace, ids: QmailIds) -> int:
    home = args.home.resolve()
    services: list[Service] = []
    sockets: list[socket.socket] = []
    for host, port in args.smtp:
        try:
            sockets.append(listen_on(host, port))
        except OSError as exc:
            for listening in sockets:
                listening.close()
            why = error_str(exc.errno)
            print(f"qmail-sim serve: unable to bind smtp {host}:{port}: {why}", file=sys.stderr)
            return EXIT_TEMP
    workdir: str | None = None
    if args.smtp or args.qmtp or args.qmqp:
        workdir = tempfile.mkdtemp(prefix="qmail-sim-queue.")
        os.chown(workdir, ids.qmailq, ids.qmail)
        os.chmod(workdir, 0o755)
        sock = str(Path(workdir) / "queue")
        queue = _Child(
            "queue",
            _serve_argv(home, "--queue-service", sock),
            (ids.qmailq, ids.qmail),
            "listening ",
        )
        services.append(queue.service())
        for (host, port), listening in zip(args.smtp, sockets, strict=True):
            services.append(_smtp_group(home, host, port, sock, listening, args, ids))
        # qmail-qmtpd and qmail-qmqpd run as qmaild too (FAQ 5.6: tcpserver -u qmaild)
        for kind, addresses in (("qmtp", args.qmtp), ("qmqp", args.qmqp)):
            for host, port in addresses:
                options = (
                    _smtp_options(args)
                    if kind == "qmtp"
                    else ["--concurrency", str(args.concurrency)]
                )
                argv = _serve_argv(
                    home, f"--{kind}", f"{host}:{port}", "--queue-socket", sock, *options
                )
                services.append(
                    _Child(kind, argv, (ids.qmaild, ids.nofiles), "listening ").service()
                )
    ctx = make_context(home)
    services += pop3_services(args, ctx, real_environ())
    if args.send:
        path = f"{home}/bin:/usr/local/bin:/usr/bin:/bin"  # qmail's rc: env - PATH=...
        start = [str(home / "bin" / "qmail-start"), args.default_delivery]
        env = {"PATH": path}
        if "QMAILSIM_PROFILE" in os.environ:  # server.__main__'s profiling, passed on
            env["QMAILSIM_PROFILE"] = os.environ["QMAILSIM_PROFILE"]
        send = _Child("delivery", start, None, "status: ", env=env)
        services.append(send.service(signal.SIGALRM, signal.SIGHUP))
    if not services:
        print("qmail-sim serve: nothing to serve (give --smtp HOST:PORT)", file=sys.stderr)
        return 100
    try:
        return asyncio.run(serve(services))
    finally:
        for listening in sockets:
            listening.close()
        if workdir is not None:
            with contextlib.suppress(OSError):
                os.unlink(Path(workdir) / "queue")
                os.rmdir(workdir)
