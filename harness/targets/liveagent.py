"""The agent: one process that holds a live (or reference) scenario's world.

``python -m harness.targets.liveagent`` is started by :mod:`harness.targets.live`
(under ``unshare --net --mount`` when :mod:`harness.netns` can make
namespaces). It reads a :class:`~harness.targets.agentwire.Setup` from stdin,
then serves, in an asyncio loop on a thread of its own:

- the fake DNS (:class:`harness.fakedns.FakeDns`) over real UDP and TCP on
  each ``dns.servers`` address, port 53 in a namespace; an address that only
  the resolv.conf names gets a listener that records each query and never
  answers, as a dead server would (the simulator's "timeout");
- each fake peer (:mod:`harness.fakepeers`) on its ``127.x.y.z:25``;

and writes the resolv.conf naming them. The mail system itself is a backend:
:class:`harness.targets.liveserver.OurServer` (our programs as real
listeners and qmail-send's daemon, in this process) or
:class:`harness.targets.qmailserver.QmailServer` (a real home's programs as
child processes). Requests then come as frames on stdin and each gets one
reply on the original stdout; the process's fd 1 is pointed at stderr so no
stray print can break the framing.

Time is real plus an offset read from a file (server.runtime.OffsetClock):
the harness's ``advance`` becomes a new offset and a trigger pull, never a
sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from harness.fakedns import FakeDns
from harness.fakedns import serve as serve_dns
from harness.fakepeers import FakePeers
from harness.targets.agentwire import Request, Setup, read_frame, write_frame
from harness.targets.livepeers import LivePeers, route_ports, scripted_delays
from harness.targets.qmailclock import DILATION
from server.runtime import OffsetClock

DNS_PORT = 53
SMTP_PORT = 25


class Backend(Protocol):
    def request(self, verb: str, args: dict[str, Any]) -> object: ...
    def close(self) -> None: ...


class Loop:
    """An asyncio loop in a daemon thread; :meth:`call` runs a coroutine in it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="agent")
        self.thread.start()

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)
        if not self.thread.is_alive():
            self.loop.close()


class World:
    """The fake DNS and peers of one scenario, on real sockets."""

    def __init__(self, setup: Setup, loop: Loop) -> None:
        self.setup = setup
        self.loop = loop
        self.clock = OffsetClock(setup.offset_path)
        # Start on a whole second, as the simulator's clock does: qmail counts
        # whole seconds (now.c), so a retry "at +401s" stays at +401s.
        if setup.mode == "qmail":
            # A real qmail reads the real clock: count from the current second.
            self.start_time = float(math.floor(self.clock.now()))
        else:
            self.start_time = float(math.ceil(self.clock.now()))
            self.set_time(self.start_time)
        self.dns = FakeDns(setup.scenario.dns, self.clock.now, self.start_time)
        self.peers = FakePeers(setup.scenario.peers)
        self.servers: list[Any] = []
        self.live_peers: LivePeers | None = None
        #: a real qmail-remote waits out the peers' delays on a fast clock
        #: (harness.targets.qmailclock): their time is owed to the queue's
        self.dilated = setup.mode == "qmail" and bool(scripted_delays(setup.scenario.peers))
        self.owed = 0.0
        self.owing = threading.Lock()  # the peers' loop owes, the request thread takes

    def _advance(self, seconds: float) -> None:
        self.set_time(self.clock.now() + seconds)

    def _owe(self, seconds: float) -> None:
        with self.owing:
            self.owed += seconds

    def take_owed(self) -> float:
        """The seconds the peers' delays took since last asked (a dilated world)."""
        with self.owing:
            owed, self.owed = self.owed, 0.0
        return owed

    def start(self) -> list[str]:
        """Listen everywhere; return the resolv.conf's ``nameserver`` values."""
        spec = self.setup.scenario.dns
        named = list(spec.servers if spec.resolv_conf is None else spec.resolv_conf)
        where: dict[str, str] = {}
        for ip in dict.fromkeys([*spec.servers, *named]):
            port = DNS_PORT if self.setup.netns else 0
            try:
                udp, tcp, port = self.loop.call(
                    serve_dns(self.dns, ip, port, answer_everywhere=False)
                )
            except OSError as exc:
                raise RuntimeError(f"fake DNS cannot listen on {ip}:{port}: {exc}") from exc
            self.servers.extend([tcp, udp])
            where[ip] = ip if port == DNS_PORT else f"{ip}:{port}"
        from server.control import ControlDir

        timeout = ControlDir(self.setup.home / "control").readint("timeoutremote", 1200)
        self.live_peers = peers = LivePeers(
            self.peers,
            self.loop.loop,
            watch=self.setup.netns,
            advance=self._owe if self.dilated else self._advance,
            timeout=float(timeout),
            dilation=DILATION if self.dilated else None,
        )
        peers.ports = route_ports(self.setup.scenario.control.get("smtproutes"))
        try:
            self.loop.call(peers.start())
        except OSError as exc:
            raise RuntimeError(f"fake peers cannot listen on port {SMTP_PORT}: {exc}") from exc
        return [where[ip] for ip in named]

    def set_time(self, t: float) -> None:
        """Make the clock read ``t`` now (never backwards). The offset may be
        negative: a run's ``clock_start`` can lie before the real time."""
        offset = max(t, self.clock.now()) - time.time()
        tmp = self.setup.offset_path.with_suffix(".tmp")
        tmp.write_text(f"{offset:.6f}\n")
        os.replace(tmp, self.setup.offset_path)

    def observe(self) -> dict[str, object]:
        if self.live_peers is not None and self.live_peers.sniffer is not None:
            self.loop.call(self.live_peers.settled(), 5.0)
        return {
            "dns_queries": list(self.dns.queries),
            "peer_sessions": {ip: list(s) for ip, s in self.peers.sessions.items()},
            "now": self.clock.now() - self.start_time,
            "start": self.start_time,
        }

    def close(self) -> None:
        async def shut() -> None:
            for server in self.servers:
                server.close()
            if self.live_peers is not None:
                await self.live_peers.close()

        with contextlib.suppress(Exception):  # closing is best effort: the process exits next
            self.loop.call(shut(), 5.0)


def make_backend(setup: Setup, world: World, loop: Loop) -> Backend:
    if setup.mode == "qmail":
        from harness.targets.qmailserver import QmailServer

        return QmailServer(setup, world, loop)
    from harness.targets.liveserver import OurServer

    return OurServer(setup, world, loop)


def serve_requests(
    src: IO[bytes], out: IO[bytes], handle: Callable[[str, dict[str, Any]], object]
) -> None:
    while True:
        try:
            request = read_frame(src)
        except EOFError:
            return
        assert isinstance(request, Request)
        try:
            write_frame(out, ("ok", handle(request.verb, request.args)))
        except Exception as exc:  # an error goes back to the harness as a StepError
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            traceback.print_exc()
            write_frame(out, ("error", detail))
        if request.verb == "close":
            return


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # prints of any module go to stderr, not into the frames
    src = sys.stdin.buffer
    setup = read_frame(src)
    assert isinstance(setup, Setup)
    loop = Loop()
    world: World | None = None
    backend: Backend | None = None

    def handle(verb: str, args: dict[str, Any]) -> object:
        nonlocal world, backend
        if verb == "start":
            if setup.netns:
                from harness import netns

                spec = setup.scenario.dns
                netns.inside_setup([*spec.servers, *(spec.resolv_conf or ()), *setup.client_ips])
            world = World(setup, loop)
            backend = make_backend(setup, world, loop)
            args["nameservers"] = world.start()
            return backend.request("start", args)
        assert world is not None and backend is not None
        if verb == "close":
            backend.close()
            world.close()
            return None
        return backend.request(verb, args)

    try:
        serve_requests(src, out, handle)
    finally:
        if backend is not None:
            backend.close()
        if world is not None:
            world.close()
        loop.stop()
        out.close()
    return 0


def resolv_conf_text(nameservers: list[str]) -> str:
    return "".join(f"nameserver {n}\n" for n in nameservers)


def write_resolv_conf(path: Path, nameservers: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(resolv_conf_text(nameservers))


if __name__ == "__main__":
    sys.exit(main())
