"""Our server as a live backend of the agent: real listeners, the real daemon.

In the agent process (see liveagent.py) this runs what ``qmail-sim serve
--smtp --pop3 --send`` runs: qmail-smtpd's live handler and qmail-popup's
chain behind our tcpserver listener (:mod:`server.tcp.listener`, with the
scenario's tcprules cdb as ``-x`` and no host lookups, as ``tcpserver -H``),
and qmail-send's daemon with its real local and remote channels (real
sockets, the home's resolv.conf) behind a gate (livesend.py). Every part
reads the same :class:`~server.runtime.OffsetClock`.

The harness's client is a real TCP client too: it binds the address the
step's ``TCPREMOTEIP`` names (added to lo inside the namespace), so
tcpserver's rules decide on a real source address; the step's other
variables are handed to the handler of that one connection (keyed by the
client's address and port) as if tcpserver's rules had set them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import ipaddress
import itertools
import os
import random
import socket
import time
from typing import Any

from harness import simqueue
from harness.converse import Turn, converse
from harness.targets.agentwire import Setup
from harness.targets.base import apply_env
from harness.targets.liveagent import Loop, World, write_resolv_conf
from harness.targets.livesend import GatedSend
from server import programs
from server.privsep import privileged
from server.programs import ProgramContext
from server.runtime import Runtime

SESSION_LIMIT = 60.0  # wall seconds a session may take
Key = tuple[str, str]


#: tcpserver -c for every listener of the live target
LISTEN_LIMIT = 40


class OurServer:
    def __init__(self, setup: Setup, world: World, loop: Loop) -> None:
        self.setup, self.world, self.loop = setup, world, loop
        self.home = setup.home
        pids = itertools.count(os.getpid() + 1)
        runtime = Runtime(
            clock=world.clock,
            rng=random.Random(),
            hostname=socket.gethostname(),
            next_pid=lambda: next(pids),
            uid=os.getuid(),
        )
        self.stderr = io.BytesIO()
        self.ctx = ProgramContext(
            home=self.home,
            runtime=runtime,
            stderr=self.stderr,
            patches=frozenset(setup.scenario.patches),
            inprocess=True,
        )
        self.log: list[str] = []
        self.overrides: dict[Key, dict[str, str | None]] = {}
        self.started: set[Key] = set()
        self.exits: dict[Key, int] = {}
        self.listeners: dict[str, Any] = {}
        self.send = GatedSend(self.ctx, setup, world, self.log.append)
        self.queue_service: simqueue.SimQueueService | None = None
        self.closed = False

    # -- starting ----------------------------------------------------------------
    def start(self, nameservers: list[str]) -> None:
        write_resolv_conf(self.home / ".qmail-sim" / "resolv.conf", nameservers)
        self.loop.call(self._listen())
        # as root, |commands that queue run as their user: the home's
        # qmail-queue service (harness.simqueue), on this server's clock
        self.queue_service = simqueue.start(self.ctx) if privileged() else None
        self.send.start()

    async def _listen(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from server.smtpd.live import handle
        from server.tcp.listener import serve as tcp_serve

        self.queue_threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="qmail-queue")
        # a POP3 session holds a thread while its client is connected: one per
        # connection the listener (-c 40) allows, as serve gives it
        self.pop3_threads = ThreadPoolExecutor(max_workers=LISTEN_LIMIT, thread_name_prefix="pop3")

        async def smtp(reader: Any, writer: Any, env: dict[str, str]) -> None:
            key, env = self._connection_env(env)
            self.exits[key] = await handle(reader, writer, env, self.ctx, self.queue_threads)

        async def smtp_named(reader: Any, writer: Any, env: dict[str, str]) -> None:
            key, env = self._connection_env(env)
            rules = self._rules_env(env)
            if rules is None:
                writer.close()  # tcpserver's deny: no program runs
                self.started.discard(key)
                return
            env.update(rules)
            self.exits[key] = await handle(reader, writer, env, self.ctx, self.queue_threads)

        async def pop3(reader: Any, writer: Any, env: dict[str, str]) -> None:
            from server.pop3.live import Pop3Service

            key, env = self._connection_env(env)
            host = env.pop("QMAILSIM_POPUP_HOST", None)
            pop3d = Pop3Service(self.ctx, hostname=host, executor=self.pop3_threads)
            await pop3d.connection(reader, writer, env)
            self.exits[key] = 0

        def netstrings(core: Any) -> Any:
            """qmail-qmtpd's or qmail-qmqpd's core on a connection (server.qmqp.live)."""
            from server.qmqp.live import handle as handle_netstrings

            async def serve(reader: Any, writer: Any, env: dict[str, str]) -> None:
                key, env = self._connection_env(env)
                self.exits[key] = await handle_netstrings(
                    core, reader, writer, env, self.ctx, self.queue_threads
                )

            return serve

        from server.qmqp.qmqpd import QmqpCore
        from server.qmqp.qmtpd import QmtpCore

        services = (
            ("smtp", smtp, self.setup.rules_cdb),
            ("smtp-named", smtp_named, None),
            ("pop3", pop3, None),
            ("qmtp", netstrings(QmtpCore), None),
            ("qmqp", netstrings(QmqpCore), None),
        )
        for name, handler, rules in services:
            server = await tcp_serve(
                "127.0.0.1", 0, handler, rules, LISTEN_LIMIT, remote_host=False, log=self.log_tcp
            )
            self.listeners[name] = server

    def _rules_env(self, env: dict[str, str]) -> dict[str, str] | None:
        """tcpserver's rules for a client whose host name or ident the step gave.

        Our listener runs as ``tcpserver -H`` (no PTR or ident lookups), so a
        step's TCPREMOTEHOST/TCPREMOTEINFO cannot reach its rules; such
        sessions come in on a listener without rules and the same lookup
        (harness.targets.tcprules, a real cdb) is made here on the step's values.
        """
        scenario = self.setup.scenario
        if scenario.tcprules is None:
            return {}
        from harness.targets.tcprules import lookup

        return lookup(scenario.tcprules, self.setup.workdir, env)

    def log_tcp(self, line: str) -> None:
        pass  # tcpserver's own log is not qmail-send's; expect never looks at it

    def _connection_env(self, env: dict[str, str]) -> tuple[Key, dict[str, str]]:
        key = (env.get("TCPREMOTEIP", ""), env.get("TCPREMOTEPORT", ""))
        self.started.add(key)
        return key, apply_env(env, self.overrides.pop(key, {}))

    # -- requests -------------------------------------------------------------------
    def request(self, verb: str, args: dict[str, Any]) -> object:
        if verb == "start":
            self.start(args["nameservers"])
            return None
        if verb == "session":
            return self.session(args["kind"], args["env"], args["played"], args.get("host"))
        if verb == "inject":
            return self.inject(args["argv"], args["env"], args["message"])
        if verb == "program":
            return self.program(args["argv"], args["env"], args["stdin"])
        if verb == "idle":
            self.send.wait_idle()
            self.send.stamp_deliveries()
            return None
        if verb == "advance":
            self.send.advance(args["seconds"], args["passes"])
            return None
        if verb == "signal":
            self.send.signal(args["name"])
            return None
        if verb == "observe":
            return self.observe()
        if verb == "ports":  # for harness.api.QmailServer: where a client connects
            return {name: server.port for name, server in self.listeners.items()}
        raise ValueError(f"unknown request {verb!r}")

    def session(
        self, kind: str, changes: dict[str, str | None], played: list[Turn], host: str | None
    ) -> tuple[int, bytes, bytes]:
        changes = dict(changes)
        source = _bindable(changes.get("TCPREMOTEIP"), self.setup.netns)
        if source is not None:
            changes.pop("TCPREMOTEIP")
        if kind == "pop3" and host is not None:
            changes["QMAILSIM_POPUP_HOST"] = host
        # A host name, an ident or (outside a namespace) a client address we
        # cannot bind: tcpserver's rules must be looked up on the step's values.
        named = kind == "smtp" and bool(
            {"TCPREMOTEHOST", "TCPREMOTEINFO", "TCPREMOTEIP"} & set(changes)
        )
        listener = self.listeners["smtp-named" if named else kind]
        err_start = len(self.stderr.getvalue())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((source or "127.0.0.1", 0))
            ip, port = sock.getsockname()
            key = (ip, str(port))
            self.overrides[key] = changes
            sock.settimeout(SESSION_LIMIT)
            sock.connect(("127.0.0.1", listener.port))
            output = converse(sock, played, netstrings=kind in ("qmtp", "qmqp"))
        self.overrides.pop(key, None)
        code = self._exit_of(key)
        return code, output, self.stderr.getvalue()[err_start:]

    def _exit_of(self, key: Key) -> int:
        if key not in self.started:
            return 0  # tcpserver's rules said deny: no program ran (the simulator's 0)
        deadline = time.monotonic() + 5.0
        while key not in self.exits and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.exits.pop(key, 0)

    def inject(
        self, argv: list[str], env: dict[str, str], message: bytes
    ) -> tuple[int, bytes, bytes]:
        return self.program(argv, env, message)

    def program(
        self, argv: list[str], env: dict[str, str], stdin: bytes
    ) -> tuple[int, bytes, bytes]:
        """One of the home's programs in-process, in the work directory (as on every target)."""
        out = io.BytesIO()
        err_start = len(self.stderr.getvalue())
        ctx = dataclasses.replace(self.ctx, cwd=self.setup.workdir)
        code = programs.run(argv[0], argv, env, io.BytesIO(stdin), out, ctx)
        return code, out.getvalue(), self.stderr.getvalue()[err_start:]

    # -- the daemon -------------------------------------------------------------
    def observe(self) -> dict[str, object]:
        wake = self.send.next_wakeup()
        seen = self.world.observe()
        start = float(seen["start"])  # type: ignore[arg-type]
        seen["log"] = list(self.log)
        seen["next_retry"] = None if wake is None else wake - start
        seen["stderr"] = self.stderr.getvalue()
        return seen

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.send.close()

        async def shut() -> None:
            for server in self.listeners.values():
                await server.close()

        with contextlib.suppress(Exception):  # best effort: the agent exits next
            self.loop.call(shut(), 10.0)
        if self.queue_service is not None:
            self.queue_service.close()
        if hasattr(self, "queue_threads"):
            self.queue_threads.shutdown(wait=False)
            self.pop3_threads.shutdown(wait=False)


def _bindable(address: str | None, netns: bool) -> str | None:
    """The step's TCPREMOTEIP when a client socket can really come from it."""
    if address is None:
        return None
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return None
    return str(ip) if ip.is_loopback or netns else None


__all__ = ["OurServer"]
