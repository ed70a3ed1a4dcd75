"""The asyncio side of tcpserver: listen, accept under a limit, serve each client.

:func:`serve` starts a :class:`TcpServer`; for each connection it writes the
banner, builds the environment of tcp-environ(5) (:mod:`server.tcp.environ`),
consults the rules cdb (:func:`check_rules`) and then runs a program with the
socket as its stdin and stdout, or awaits an in-process
``handler(reader, writer, env)``. :mod:`server.tcp.tcpserver` is the
command-line program around it; see there for what is and is not modelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.cdb import CdbError, Reader
from server.errors import EXIT_PERM, EXIT_TEMP
from server.strerr import error_str
from server.tcp import ident
from server.tcp.environ import (
    Endpoints,
    decision_line,
    end_line,
    pid_line,
    status_line,
    tcp_environ,
    with_rules,
)
from server.tcp.rules import Decision, lookup

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]], Awaitable[None]]
#: Reverse lookup of an IPv4 address: the name, or None.
Resolver = Callable[[str], Awaitable[str | None]]
#: Forward lookup of a name: its IPv4 addresses (empty on any failure).
Forward = Callable[[str], Awaitable[list[str]]]

DROP = "tcpserver: warning: dropping connection, "
DEFAULT_LIMIT = 40  # tcpserver.c: limit = 40
DEFAULT_BACKLOG = 20  # tcpserver.c: backlog = 20
DEFAULT_IDENT_TIMEOUT = 26  # tcpserver.c: timeout = 26
#: The most ended sessions a helper tells in one packet (a byte each), and
#: what the accepting process reads at once (Config.handoff_to).
ENDED_MAX = 4096


class _Drop(Exception):
    """tcpserver's child dies before the program: the rest of the DROP line."""


class RulesUnreadable(Exception):
    """The rules file exists but cannot be read (or is missing without -X)."""

    def __init__(self, path: Path, errno_: int | None) -> None:
        super().__init__(str(path))
        self.path = path
        self.errno = errno_


def check_rules(
    path: Path | None,
    ip: str,
    host: str | None,
    info: str | None,
    *,
    allow_missing: bool = False,
) -> Decision | None:
    """What tcpserver's rules step decides; None means allow with nothing added.

    A missing file is an error unless ``allow_missing`` (``-X``); any other
    failure to read is always one (tcpserver drops the connection).
    """
    if path is None:
        return None
    try:
        reader = Reader.open(path)
    except FileNotFoundError as exc:
        if allow_missing:
            return None
        raise RulesUnreadable(path, exc.errno) from exc
    except OSError as exc:
        raise RulesUnreadable(path, exc.errno) from exc
    try:
        return lookup(reader, ip, host, info)
    except CdbError as exc:
        raise RulesUnreadable(path, 71) from exc  # EPROTO: djb's cdb_read


def rules_env(
    path: Path, env: Mapping[str, str], *, allow_missing: bool = False
) -> dict[str, str] | None:
    """The environment tcpserver ``-x path`` gives a client already described
    by ``env`` (TCPREMOTEIP, TCPREMOTEHOST, TCPREMOTEINFO); None if denied.

    For the simulator, which has no sockets but wants tcpserver's rules.
    Raises :class:`RulesUnreadable` when tcpserver would drop the connection.
    """
    decision = check_rules(
        path,
        env.get("TCPREMOTEIP", "0.0.0.0"),
        env.get("TCPREMOTEHOST"),
        env.get("TCPREMOTEINFO"),
        allow_missing=allow_missing,
    )
    if decision is not None and decision.deny:
        return None
    return with_rules(env, decision)


@dataclass(kw_only=True)
class Config:
    """Everything tcpserver's options set."""

    host: str = "0.0.0.0"
    port: int = 0
    limit: int = DEFAULT_LIMIT
    rules: Path | None = None
    allow_missing_rules: bool = False
    banner: bytes = b""
    verbosity: int = 1
    remote_host: bool = True
    #: -r: ask the client's identd (RFC 1413) for TCPREMOTEINFO; -t is its timeout.
    remote_info: bool = False
    ident_timeout: float = DEFAULT_IDENT_TIMEOUT
    ident_port: int = ident.IDENT_PORT
    local_name: str | None = None
    backlog: int = DEFAULT_BACKLOG
    nodelay: bool = False
    #: A socket already bound and listening (tcpserver's bind done by a parent
    #: that passed it on): accept on it instead of binding host:port.
    listening: socket.socket | None = None
    #: A connected Unix socket to a helper process (a second serve given the
    #: other end as ``handoff_from``): a connection that arrives while this
    #: process serves more sessions than it has handed over is passed to
    #: the helper to serve, and the helper says when it ends (the limit
    #: counts both processes' sessions).
    handoff_to: socket.socket | None = None
    #: The helper's end: serve connections passed here instead of accepting.
    handoff_from: socket.socket | None = None
    #: -O (default) / -o: clear IP options a client set (socket_ipoptionskill).
    kill_ip_options: bool = True
    print_port: bool = False
    base_env: Mapping[str, str] = field(default_factory=dict)
    resolver: Resolver | None = None
    #: -p: keep TCPREMOTEHOST only if ``forward(name)`` lists the client's IP.
    paranoid: bool = False
    forward: Forward | None = None
    #: -g/-u/-U: the ids the command line switches to after binding (0: keep).
    gid: int = 0
    uid: int = 0
    log: Callable[[str], None] = lambda line: None


class TcpServer:
    """A listening socket and the accept loop; start it with :func:`serve`."""

    def __init__(self, config: Config, target: Handler | Sequence[str]) -> None:
        self.config = config
        self.target = target
        self.active = 0
        self._serial = itertools.count(1)
        self._room = asyncio.Condition()
        #: the accept loop waits for room (-c sessions under way): an ended
        #: session then wakes it
        self._full = False
        self._tasks: set[asyncio.Task[None]] = set()
        if config.listening is not None:
            self._sock = config.listening
            self._sock.setblocking(False)
        else:
            self._sock = listen_on(config.host, config.port, config.backlog)
        self.port: int = self._sock.getsockname()[1]
        self._accepting: asyncio.Task[None] | None = None
        #: Sessions handed to the helper (Config.handoff_to) and not yet ended.
        self.handed = 0
        #: Called as a session served here ends (the helper tells the accepting process).
        self._freed: Callable[[], None] = lambda: None
        #: The helper's ended sessions not yet told (the accepting process's
        #: buffer was full), and whether it waits for room to tell them.
        self._untold = 0
        self._waiting_to_tell = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()
        return str(host), int(port)

    def start(self) -> None:
        if self._verbose:
            self.config.log(status_line(self.active, self.config.limit))
        loop = asyncio.get_running_loop()
        helper, helped = self.config.handoff_to, self.config.handoff_from
        if helper is not None:
            helper.setblocking(False)
            loop.add_reader(helper, self._helper_said)
        if helped is None:
            self._accepting = loop.create_task(self._accept_loop())
        else:
            self._accepting = loop.create_task(self._serve_handed(helped))

    @property
    def _verbose(self) -> bool:
        return self.config.verbosity >= 2

    def _warn(self, line: str) -> None:
        if self.config.verbosity >= 1:
            self.config.log(line)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.active >= self.config.limit:  # tcpserver's -c: wait for room
                self._full = True
                async with self._room:
                    await self._room.wait_for(lambda: self.active < self.config.limit)
                self._full = False
            try:
                conn, peer = await loop.sock_accept(self._sock)
            except OSError:  # tcpserver: "if (t == -1) continue;"
                await asyncio.sleep(0)
                continue
            self.active += 1
            if self._verbose:
                self.config.log(status_line(self.active, self.config.limit))
            if self._handing_over() and self._hand_over(conn, peer):
                self.handed += 1
                continue
            self._serve(conn, peer)

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.setblocking(False)
        self._keep(self._connection(conn, peer))

    def _keep(self, work: Coroutine[object, object, None]) -> None:
        """Run ``work`` as a task held until it ends (close() waits for it)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- handing connections to a helper process (Config.handoff_to) -------
    #
    # One process serves a session itself while it serves no more than the
    # helper (not counting one that may be closing): a lone client is always
    # served by the same, warm process, and a busy server by both, in
    # nearly equal shares.

    def _handing_over(self) -> bool:
        # a lone client's last session may still be closing as its next is
        # accepted: that one does not count
        own = self.active - 2 - self.handed
        return self.config.handoff_to is not None and own > self.handed

    def _hand_over(self, conn: socket.socket, peer: tuple[str, int]) -> bool:
        """Pass ``conn`` to the helper; False (serve it here) if it cannot take it."""
        helper = self.config.handoff_to
        assert helper is not None
        try:
            socket.send_fds(helper, [f"{peer[0]} {peer[1]}".encode()], [conn.fileno()])
        except OSError:
            return False
        conn.close()
        return True

    def _helper_said(self) -> None:
        """The helper's word: a byte for each handed session that ended; end of
        file if it is gone, with its sessions (then this process serves all)."""
        helper = self.config.handoff_to
        assert helper is not None
        try:
            ended = len(helper.recv(ENDED_MAX))
        except BlockingIOError:
            return
        except OSError:
            ended = 0
        if not ended:
            asyncio.get_running_loop().remove_reader(helper)
            self.config.handoff_to = None
            ended = self.handed
        self.handed -= ended
        self._count_ended(ended)
        if self._full:
            self._keep(self._make_room())

    async def _serve_handed(self, source: socket.socket) -> None:
        """The helper's side: serve the connections that come over ``source``."""
        loop = asyncio.get_running_loop()
        source.setblocking(False)
        self._freed = lambda: self._tell(source, 1)
        while True:
            await _readable(loop, source)
            try:
                data, fds, _flags, _addr = socket.recv_fds(source, 64, 1)
            except BlockingIOError:
                continue
            if not data:  # the accepting process is gone
                return
            for fd in fds:  # at most one, with "IP PORT" from accept()
                host, _, port = data.decode("latin-1").partition(" ")
                self.active += 1
                self._serve(socket.socket(fileno=fd), (host, int(port) if port.isdigit() else 0))

    def _tell(self, source: socket.socket, ended: int = 0) -> None:
        """The helper's side: tell the accepting process that ``ended`` more
        sessions ended, a byte each, with any not told yet in the same packet.
        When its buffer is full they wait for room (a word lost would hold a
        place of its -c limit for good); when it is gone, nobody is told."""
        self._untold += ended
        while self._untold:
            said = min(self._untold, ENDED_MAX)
            try:
                source.send(b"e" * said)
            except BlockingIOError:
                if not self._waiting_to_tell:
                    asyncio.get_running_loop().add_writer(source, self._tell, source)
                    self._waiting_to_tell = True
                return
            except OSError:
                said = self._untold
            self._untold -= said
        if self._waiting_to_tell:
            asyncio.get_running_loop().remove_writer(source)
            self._waiting_to_tell = False

    async def _connection(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        wstat = 0
        # The "pid" of tcpserver's -v lines: a spawned program's pid once it
        # exists, else a connection serial (no process of its own).
        ident = [next(self._serial)]
        try:
            wstat = await self._run(conn, peer, ident)
        except Exception as exc:  # a failing handler drops its client, not the server
            self._warn(f"{DROP}{type(exc).__name__}: {exc}")
            wstat = EXIT_TEMP << 8
        finally:
            conn.close()
            if self._verbose:
                self.config.log(end_line(ident[0], wstat))
            self._freed()
            self._count_ended(1)
            if self._full:
                await self._make_room()

    def _count_ended(self, sessions: int) -> None:
        for _ in range(sessions):
            self.active -= 1
            if self._verbose:
                self.config.log(status_line(self.active, self.config.limit))

    async def _make_room(self) -> None:
        async with self._room:
            self._room.notify_all()

    async def _endpoints(self, local: tuple[str, int], peer: tuple[str, int]) -> Endpoints:
        local_ip, local_port = local[:2]
        remote_ip, remote_port = peer[:2]
        resolver = self.config.resolver if self.config.remote_host else None
        local_host = self.config.local_name
        if local_host is None and self.config.resolver is not None:
            local_host = await self.config.resolver(local_ip)
        remote_host = await resolver(remote_ip) if resolver is not None else None
        if remote_host is not None and self.config.paranoid:
            remote_host = await self._verified(remote_host, remote_ip)
        info = None
        if self.config.remote_info:
            info = await ident.lookup(
                (remote_ip, remote_port),
                (local_ip, local_port),
                self.config.ident_timeout,
                port=self.config.ident_port,
                limit=ident.UCSPI_MAX_INFO,
            )
        return Endpoints(
            local_ip=local_ip,
            local_port=local_port,
            remote_ip=remote_ip,
            remote_port=remote_port,
            local_host=local_host,
            remote_host=remote_host,
            remote_info=info,
        )

    async def _verified(self, name: str, ip: str) -> str | None:
        """-p (tcpserver.c): a name whose addresses do not include ``ip`` is dropped."""
        forward = self.config.forward
        if forward is None:
            return None
        return name if ip in await forward(name) else None

    async def _run(self, conn: socket.socket, peer: tuple[str, int], ident: list[int]) -> int:
        """Serve one connection; the wait status tcpserver would log for it.

        tcpserver.c forks first and logs "pid" and "ok"/"deny" from the child
        that becomes the program, so those lines carry the program's pid: for
        a program we hold them back until it has started (``ident[0]`` then
        becomes its pid); a handler or a denied client keeps the serial.

        The client's address is the one accept() gave (``peer``): tcpserver
        never asks getpeername(), so a client that reset the connection
        while it waited to be accepted is still served (its program reads
        the reset), as Linux still accepts it.
        """
        serial = ident[0]
        # -v lines wait for the pid they carry (see above): each takes it as argument.
        held: list[Callable[[int], str]] = []
        if self._verbose:
            held.append(lambda pid: pid_line(pid, str(peer[0])))
        try:
            local = await self._greet(conn)
        except _Drop as exc:
            for line in held:
                self.config.log(line(serial))
            self._warn(f"{DROP}{exc}")
            return EXIT_TEMP << 8
        ends = await self._endpoints(local, peer)
        env = tcp_environ(self.config.base_env, ends)
        try:
            decision = check_rules(
                self.config.rules,
                ends.remote_ip,
                ends.remote_host,
                ends.remote_info,
                allow_missing=self.config.allow_missing_rules,
            )
        except RulesUnreadable as exc:
            self._warn(f"{DROP}unable to read {exc.path}: {error_str(exc.errno)}")
            return EXIT_TEMP << 8
        deny = decision is not None and decision.deny
        if self._verbose:
            held.append(lambda pid: decision_line(pid, deny, ends))
        if deny or callable(self.target):
            for line in held:
                self.config.log(line(serial))
            if deny:
                return EXIT_PERM << 8  # the child's _exit(100)
            return await self._handle(conn, with_rules(env, decision))
        return await self._spawn(conn, with_rules(env, decision), list(self.target), ident, held)

    async def _greet(self, conn: socket.socket) -> tuple[str, int]:
        """tcpserver.c's doit() up to socket_local4: socket options, the
        banner, and the local address; raises :class:`_Drop` as it dies."""
        # Failures of the two options are ignored, as tcpserver ignores them.
        if self.config.kill_ip_options:  # against source-routed spoofing (tcpserver.c)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"")
        if self.config.nodelay:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.config.banner:
            try:
                await asyncio.get_running_loop().sock_sendall(conn, self.config.banner)
            except OSError as exc:
                raise _Drop(f"unable to print banner: {error_str(exc.errno)}") from exc
        try:
            host, port = conn.getsockname()[:2]
        except OSError as exc:
            raise _Drop(f"unable to get local address: {error_str(exc.errno)}") from exc
        return str(host), int(port)

    async def _handle(self, conn: socket.socket, env: dict[str, str]) -> int:
        assert callable(self.target)
        # the transport takes the socket over and closes it (then conn.close() does nothing)
        reader, writer = await asyncio.open_connection(sock=conn)
        try:
            await self.target(reader, writer, env)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return 0

    async def _spawn(
        self,
        conn: socket.socket,
        env: dict[str, str],
        argv: list[str],
        ident: list[int],
        held: list[Callable[[int], str]],
    ) -> int:
        conn.setblocking(True)  # the child reads and writes it as plain fds 0 and 1
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=conn.fileno(), stdout=conn.fileno(), env=env
            )
        except OSError as exc:
            for line in held:
                self.config.log(line(ident[0]))
            self._warn(f"{DROP}unable to run {argv[0]}: {error_str(exc.errno)}")
            return EXIT_TEMP << 8
        ident[0] = proc.pid
        for line in held:
            self.config.log(line(proc.pid))
        code = await proc.wait()
        return (-code) if code < 0 else code << 8

    async def close(self, grace: float | None = None) -> None:
        """Stop accepting, then let the connections being served finish.

        ``grace`` bounds the wait (None: as long as they take); in-process
        handlers still running after it are cancelled. Programs are always
        waited for: their processes would outlive a real tcpserver anyway.
        (``asyncio.wait_for(server.close(), t)`` also cancels them at ``t``.)
        """
        if self.config.handoff_to is not None:
            asyncio.get_running_loop().remove_reader(self.config.handoff_to)
            self.config.handoff_to.close()  # the helper reads its end of file
        if self._waiting_to_tell and self.config.handoff_from is not None:
            asyncio.get_running_loop().remove_writer(self.config.handoff_from)
            self._waiting_to_tell = False
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        self._sock.close()
        if not self._tasks:
            return
        if grace is not None and callable(self.target):
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def serve_forever(self) -> None:
        assert self._accepting is not None
        await self._accepting


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Until ``sock`` has something to read (or its end of file)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock, wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock)


def listen_on(host: str, port: int, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """tcpserver's socket_bind4_reuse and socket_listen: a non-blocking
    listening socket (also for a split serve to bind, as root, and pass on)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # socket_bind4_reuse
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    host: str,
    port: int,
    handler_or_argv: Handler | Sequence[str],
    rules: Path | None = None,
    concurrency: int = DEFAULT_LIMIT,
    **options: object,
) -> TcpServer:
    """Listen on ``host:port`` (port 0: any free port) and start accepting.

    ``handler_or_argv`` is ``async def handler(reader, writer, env)`` or a
    program's argv. Other :class:`Config` fields go in ``options`` (e.g.
    ``base_env``, ``verbosity``, ``log``, ``banner``, ``resolver``,
    ``local_name``, ``allow_missing_rules``). Returns the running server:
    ``server.port``, ``await server.close()``.
    """
    config = Config(host=host, port=port, rules=rules, limit=concurrency)
    for name, value in options.items():
        if not hasattr(config, name):
            raise TypeError(f"serve() got an unexpected option {name!r}")
        setattr(config, name, value)
    server = TcpServer(config, handler_or_argv)
    server.start()
    return server
