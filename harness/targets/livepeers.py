"""The fake peers on real sockets, including peers that refuse connections.

Each peer ``127.x.y.z`` listens on port 25 while the script of its next
connection accepts; when that script says ``refuse``, the listener is closed,
so the kernel itself refuses the next connection (an RST to the SYN, what
qmail-remote's connect sees as "connection refused" and answers by trying
the next MX). A refused attempt still counts as a connection, as in the
simulator: inside the agent's private network namespace a packet socket on
``lo`` watches for SYNs to a peer that is not listening and records each as
a closed :class:`~harness.fakepeers.PeerSession`, after which the listener
is opened again if the following script accepts.

Outside a namespace (no packet socket wanted on the host's lo) a refusing
peer simply does not listen and its refused attempts are not counted.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any

from harness.fakepeers import FakePeers, PeerSession
from harness.scenario.model import PeerSpec

SMTP_PORT = 25
ETH_P_IP = 0x0800
PACKET_HOST = 0  # linux/if_packet.h: a packet addressed to this host
TCP_SYN, TCP_ACK = 0x02, 0x10
TIMEOUTREMOTE = 1200.0  # qmail-control(5): timeoutremote's default
REFUSAL_GRACE = 0.1  # seconds to wait before calling a SYN a refused connection


def scripted_delays(peers: Mapping[str, PeerSpec]) -> list[tuple[str, str, float]]:
    """Every (peer, stage, seconds) a peer's scripts wait before a reply."""
    return [
        (ip, stage, seconds)
        for ip, spec in peers.items()
        for script in (spec.script, *spec.attempts)
        for stage, seconds in script.delay.items()
    ]


def route_ports(smtproutes: str | None) -> dict[str, set[int]]:
    """The ports qmail-control(5)'s smtproutes lines name for each relay address."""
    ports: dict[str, set[int]] = {}
    for line in (smtproutes or "").splitlines():
        parts = line.strip().split(":")
        if len(parts) >= 3 and parts[1] and parts[2].isascii() and parts[2].isdigit():
            ports.setdefault(parts[1].strip("[]"), set()).add(int(parts[2]))
    return ports


def syn_to(frame: bytes) -> tuple[str, int, int] | None:
    """(destination ip, port, source port) of an Ethernet frame holding a TCP SYN."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != socket.IPPROTO_TCP or len(ip) < ihl + 14:
        return None
    dst = socket.inet_ntoa(ip[16:20])
    sport, port = struct.unpack("!HH", ip[ihl : ihl + 4])
    flags = ip[ihl + 13]
    if flags & TCP_SYN and not flags & TCP_ACK:
        return dst, port, sport
    return None


class LivePeers:
    """Listeners for every peer of ``peers``, opened and closed by their scripts."""

    def __init__(
        self,
        peers: FakePeers,
        loop: asyncio.AbstractEventLoop,
        watch: bool,
        advance: Callable[[float], None] = lambda seconds: None,
        timeout: float = TIMEOUTREMOTE,
        dilation: float | None = None,
    ) -> None:
        self.peers = peers
        self.advance = advance
        self.timeout = timeout
        #: a real qmail-remote's clock runs this many times faster (libfaketime,
        #: harness.targets.qmailserver.FAKETIME): scripted delays are waited out
        #: in real time, so short by as much, and its own timeouts end them
        self.dilation = dilation
        self.loop = loop
        self.watch = watch
        self.servers: dict[str, list[asyncio.Server]] = {}
        #: ports besides 25 a peer listens on (smtproutes' ``host:relay:port``)
        self.ports: dict[str, set[int]] = {}
        self.stopping = False
        self.sniffer: threading.Thread | None = None
        self.sock: socket.socket | None = None
        #: client ports of connections that were accepted (their SYNs are not refusals)
        self.accepted: set[int] = set()
        #: SYNs seen and not yet judged (see REFUSAL_GRACE)
        self.pending = 0

    async def start(self) -> None:
        for ip in self.peers.specs:
            await self.sync(ip)
        refusing = any(
            s.refuse for spec in self.peers.specs.values() for s in (spec.script, *spec.attempts)
        )
        if refusing and self.watch:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            self.sock.bind(("lo", 0))
            self.sock.settimeout(0.2)
            self.sniffer = threading.Thread(target=self._sniff, daemon=True, name="syn-watch")
            self.sniffer.start()

    def _accepts(self, ip: str) -> bool:
        spec = self.peers.specs[ip]
        return not spec.for_attempt(len(self.peers.sessions.get(ip, []))).refuse

    async def sync(self, ip: str) -> None:
        want = self._accepts(ip) and not self.stopping
        servers = self.servers.get(ip)
        if want and servers is None:
            self.servers[ip] = [
                await asyncio.start_server(lambda r, w: self._client(ip, r, w), ip, port)
                for port in sorted({SMTP_PORT, *self.ports.get(ip, ())})
            ]
        elif not want and servers is not None:
            del self.servers[ip]
            for server in servers:
                server.close()

    async def _client(self, ip: str, reader: asyncio.StreamReader, writer: Any) -> None:
        self.accepted.add(int((writer.get_extra_info("peername") or ("", 0))[1]))
        session = self.peers.open(ip, int((writer.get_extra_info("sockname") or ("", 25))[1]))
        await self.sync(ip)  # the next connection may be one to refuse
        try:
            while await self._waited(session):
                writer.write(session.pending())
                await writer.drain()
                if session.stalled:
                    # The script stops answering: qmail-remote would wait
                    # timeoutremote, then see the connection as dead.
                    self.advance(self.timeout)
                    break
                data = b"" if session.closed else await reader.read(65536)
                if not data:
                    break
                session.feed(data)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _waited(self, session: PeerSession) -> bool:
        """Take the session's scripted delay before its next reply. False: hung up."""
        if self.dilation is None:
            return self._delayed(session)
        delay = session.take_delay()
        if delay > 0:
            self.advance(min(delay, self.timeout))
            await asyncio.sleep(delay / self.dilation)
        return True

    def _delayed(self, session: PeerSession) -> bool:
        """A scripted delay moves the agent's clock instead of sleeping.

        A delay past qmail-remote's timeoutremote moves the clock by that
        timeout and hangs up: qmail-remote's timeoutread() answers a timeout
        and an end of file alike ("Connected to ... but connection died"),
        so the outcome is the one a real wait would give. False: hung up.
        """
        delay = session.take_delay()
        if delay > self.timeout:
            session.stalled = True
            self.advance(self.timeout)
            return False
        if delay > 0:
            self.advance(delay)
        return True

    def _refused(self, ip: str, sport: int) -> None:
        self.pending -= 1
        if ip not in self.peers.specs or sport in self.accepted:
            return
        sessions = self.peers.sessions.setdefault(ip, [])
        script = self.peers.specs[ip].for_attempt(len(sessions))
        sessions.append(
            PeerSession(ip=ip, port=SMTP_PORT, attempt=len(sessions), script=script, closed=True)
        )
        self.loop.create_task(self.sync(ip))

    def _judge_later(self, ip: str, sport: int) -> None:
        self.pending += 1
        self.loop.call_later(REFUSAL_GRACE, self._refused, ip, sport)

    async def settled(self) -> None:
        """Wait until every SYN seen so far is judged (for an ``expect`` to count them)."""
        await asyncio.sleep(0)
        while self.pending:
            await asyncio.sleep(REFUSAL_GRACE / 4)

    def _sniff(self) -> None:
        sock = self.sock
        assert sock is not None
        while not self.stopping:
            try:
                frame, address = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] != PACKET_HOST:
                continue
            target = syn_to(frame)
            if target is not None and target[1] == SMTP_PORT:
                # Decide a moment later: an accepted connection's SYN is seen here
                # too, and its accept may not have run yet.
                self.loop.call_soon_threadsafe(self._judge_later, target[0], target[2])

    async def close(self) -> None:
        self.stopping = True
        for servers in self.servers.values():
            for server in servers:
                server.close()
        self.servers.clear()
        if self.sniffer is not None:
            await asyncio.to_thread(self.sniffer.join, 2.0)
        if self.sock is not None:
            self.sock.close()


__all__ = ["LivePeers", "scripted_delays", "syn_to"]
