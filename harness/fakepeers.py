"""Scripted remote mail exchangers: what qmail-remote talks to.

Each peer (an IP in 127.0.0.0/8) has a script of replies (model.PeerScript):
greeting, HELO/EHLO, MAIL, RCPT per recipient, DATA, end of data, QUIT, and
may refuse the connection, stop answering (``timeout``), hang up (``drop``)
or take its time (``delay``, virtual seconds in the simulator) at a stage;
``attempts`` gives a different script to the 1st, 2nd, … connection ("451
greylisted twice, then 250"). Peers record every session.

:class:`PeerSession` is the SMTP server side as a sans-I/O object: bytes in
(:meth:`PeerSession.feed`), reply bytes out (:meth:`PeerSession.pending`).
:class:`FakePeers` wraps it as a :class:`server.net.Connector` for the
simulator (no sockets); :func:`serve` runs the same sessions on real loopback
sockets with asyncio for live runs (a full script: exact greeting, stalls,
drops, delays), and harness/fakepeers_aiosmtpd.py puts aiosmtpd in front of
the same recording for a stock SMTP server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from harness.scenario.model import PeerScript, PeerSpec

MAX_LINE = 1000  # RFC 5321 4.5.3.1.4: a text line is at most 1000 octets with CRLF


@dataclass
class PeerSession:
    """One connection to a fake peer, and what it received."""

    ip: str
    port: int
    attempt: int
    script: PeerScript
    helo: str | None = None
    mail_from: str | None = None
    rcpt: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    data: bytes | None = None
    delivered: bool = False
    commands: list[str] = field(default_factory=list)
    closed: bool = False
    stalled: bool = False
    _in: bytes = b""
    _out: bytes = b""
    _in_data: bool = False
    _body: list[bytes] = field(default_factory=list)
    _number: int = 0
    _delay: float = 0.0

    def start(self, number: int) -> None:
        self._number = number
        self._stage("greeting", self.script.greeting)

    def pending(self) -> bytes:
        out, self._out = self._out, b""
        return out

    def _reply(self, text: str) -> None:
        text = text.replace("{ip}", self.ip).replace("{n}", str(self._number))
        self._out += b"".join(line.encode() + b"\r\n" for line in text.split("\n"))

    def _stage(self, stage: str, reply: str) -> bool:
        """Answer ``reply`` at ``stage`` unless the script stalls or drops there."""
        if self.script.timeout == stage:
            self.stalled = True
            return False
        if self.script.drop == stage:
            self.closed = True
            return False
        self._delay += self.script.delay.get(stage, 0.0)
        self._reply(reply)
        return True

    def take_delay(self) -> float:
        """How long the replies now pending took to come (virtual seconds)."""
        delay, self._delay = self._delay, 0.0
        return delay

    def feed(self, data: bytes) -> None:
        if self.closed:
            raise BrokenPipeError("the peer closed the connection")
        self._in += data
        while not (self.closed or self.stalled) and b"\n" in self._in:
            line, self._in = self._in.split(b"\n", 1)
            line = line.removesuffix(b"\r")
            if self._in_data:
                self._data_line(line)
            else:
                self._command(line.decode("latin-1")[:MAX_LINE])

    def _data_line(self, line: bytes) -> None:
        if line != b".":
            self._body.append(line[1:] if line.startswith(b".") else line)
            return
        self._in_data = False
        self.data = b"".join(b + b"\n" for b in self._body)
        if self._stage("end", self.script.end) and self.script.end.startswith("2"):
            self.delivered = True

    def _command(self, line: str) -> None:
        self.commands.append(line)
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        if verb in ("HELO", "EHLO"):
            self.helo = arg
            self._stage("helo", self.script.helo if verb == "HELO" else self.script.ehlo)
        elif verb == "MAIL":
            self.mail_from = _address(arg)
            self._stage("mail", self.script.mail)
        elif verb == "RCPT":
            self._rcpt(_address(arg))
        elif verb == "DATA":
            if self._stage("data", self.script.data) and self.script.data.startswith("3"):
                self._in_data = True
        elif verb == "QUIT":
            if self._stage("quit", self.script.quit):
                self.closed = True
        elif verb == "RSET":
            self._reply(self.script.rset)
        elif verb == "NOOP":
            self._reply("250 ok")
        else:
            self._reply("502 unimplemented")

    def _rcpt(self, address: str) -> None:
        replies = self.script.rcpt
        reply = replies.get(address, replies.get(address.lower(), replies.get("*", "250 ok")))
        if self._stage("rcpt", reply):
            (self.rcpt if reply.startswith("2") else self.rejected).append(address)


def _address(arg: str) -> str:
    """``FROM:<a@b> SIZE=1`` → ``a@b``."""
    _, _, rest = arg.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1:].split(">", 1)[0]
    return rest.split(" ", 1)[0]


class FakeConnection:
    """A :class:`server.net.Connection` to a fake peer, without sockets.

    A scripted ``delay`` moves the virtual clock (``advance``) before the reply
    is returned; a delay longer than the client's timeout is a timeout, and
    the peer is then as good as stalled.
    """

    def __init__(self, session: PeerSession, advance: Callable[[float], None] | None) -> None:
        self.session = session
        self.advance = advance

    def send(self, data: bytes) -> None:
        self.session.feed(data)

    def recv(self, timeout: float) -> bytes:
        delay = self.session.take_delay()
        if delay > timeout:
            self.session.stalled = True
            self._wait(timeout)
            raise TimeoutError(f"{self.session.ip} took {delay:g}s, more than {timeout:g}s")
        self._wait(delay)
        out = self.session.pending()
        if out and not self.session.stalled:
            return out
        if self.session.closed:
            return b""
        raise TimeoutError(f"{self.session.ip} said nothing for {timeout:g}s")

    def close(self) -> None:
        self.session.closed = True

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.advance is not None:
            self.advance(seconds)


class FakePeers:
    """The scenario's peers as a :class:`server.net.Connector`.

    A connection to an address with no peer is refused, as on loopback when
    nothing listens there.
    """

    def __init__(
        self, specs: Mapping[str, PeerSpec], advance: Callable[[float], None] | None = None
    ) -> None:
        self.specs = dict(specs)
        self.advance = advance
        self.sessions: dict[str, list[PeerSession]] = {ip: [] for ip in specs}

    def open(self, ip: str, port: int) -> PeerSession:
        spec = self.specs[ip]
        sessions = self.sessions.setdefault(ip, [])
        session = PeerSession(
            ip=ip, port=port, attempt=len(sessions), script=spec.for_attempt(len(sessions))
        )
        sessions.append(session)
        # {n}: this peer's connection number, so deliveries to different peers
        # that run at once (live, a real qmail) number theirs the same
        session.start(len(sessions))
        return session

    def connect(
        self, ip: str, port: int, *, timeout: float, local_ip: str | None = None
    ) -> FakeConnection:
        spec = self.specs.get(ip)
        if spec is None:
            raise ConnectionRefusedError(f"nothing listens on {ip}:{port}")
        script = spec.for_attempt(len(self.sessions.get(ip, [])))
        if script.refuse:
            self.sessions.setdefault(ip, []).append(
                PeerSession(
                    ip=ip, port=port, attempt=len(self.sessions[ip]), script=script, closed=True
                )
            )
            raise ConnectionRefusedError(f"{ip}:{port} refused the connection")
        if script.timeout == "connect":
            self.sessions.setdefault(ip, []).append(
                PeerSession(
                    ip=ip, port=port, attempt=len(self.sessions[ip]), script=script, stalled=True
                )
            )
            raise TimeoutError(f"connecting to {ip}:{port} timed out")
        return FakeConnection(self.open(ip, port), self.advance)

    def delivered(self, ip: str) -> list[PeerSession]:
        return [s for s in self.sessions.get(ip, []) if s.delivered]


async def serve(peers: FakePeers, ip: str, host: str, port: int) -> asyncio.Server:
    """Serve peer ``ip``'s script on a real socket at ``host:port`` (live runs)."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = peers.open(ip, writer.get_extra_info("sockname")[1])
        try:
            while True:
                await asyncio.sleep(session.take_delay())  # real time on a live run
                writer.write(session.pending())
                await writer.drain()
                data = b"" if session.closed else await reader.read(65536)
                if not data:
                    break
                session.feed(data)
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(client, host, port)
