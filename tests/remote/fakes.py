"""Test doubles for qmail-remote: a scripted SMTP peer and a connector of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_REPLIES: dict[str, bytes] = {
    "greeting": b"220 peer.example ESMTP\r\n",
    "HELO": b"250 peer.example\r\n",
    "MAIL": b"250 ok\r\n",
    "RCPT": b"250 ok\r\n",
    "DATA": b"354 go ahead\r\n",
    "body": b"250 ok 1700000000 qp 42\r\n",
}


@dataclass
class ScriptedConnection:
    """Answers each command from ``replies``; a reply of None closes the connection.

    A value may also be a callable taking the command line, for per-recipient
    answers. ``received`` keeps every byte the client sent.
    """

    replies: dict[str, bytes | Callable[[bytes], bytes | None] | None]
    received: bytearray = field(default_factory=bytearray)
    closed: bool = False
    _out: bytearray = field(default_factory=bytearray)
    _line: bytearray = field(default_factory=bytearray)
    _in_data: bool = False
    _eof: bool = False

    def __post_init__(self) -> None:
        self._reply("greeting", b"")

    def _reply(self, key: str, line: bytes) -> bytes | None:
        value = self.replies.get(key, DEFAULT_REPLIES.get(key))
        if callable(value):
            value = value(line)
        if value is None:
            self._eof = True
        else:
            self._out += value
        return value

    def send(self, data: bytes) -> None:
        if self._eof:
            raise BrokenPipeError("peer closed")
        self.received += data
        for byte in data:
            self._line.append(byte)
            if byte == 0x0A:
                self._command(bytes(self._line))
                self._line.clear()

    def _command(self, line: bytes) -> None:
        if self._in_data:
            if line == b".\r\n":
                self._in_data = False
                self._reply("body", line)
            return
        verb = line[:4].upper().decode("latin-1")
        if verb == "DATA":
            reply = self._reply("DATA", line)
            self._in_data = reply is not None and reply.startswith(b"3")
        elif verb in ("HELO", "MAIL", "RCPT"):
            self._reply(verb, line)
        elif verb == "QUIT":
            self._out += b"221 bye\r\n"

    def recv(self, timeout: float) -> bytes:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            return data
        if self._eof:
            return b""
        raise TimeoutError("peer is silent")

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeConnector:
    """Connector over scripted peers: ip -> replies, or an exception to raise on connect."""

    peers: dict[str, dict[str, bytes | Callable[[bytes], bytes | None] | None] | BaseException]
    attempts: list[tuple[str, int]] = field(default_factory=list)
    connections: list[ScriptedConnection] = field(default_factory=list)

    def connect(
        self, ip: str, port: int, *, timeout: float, local_ip: str | None = None
    ) -> ScriptedConnection:
        self.attempts.append((ip, port))
        peer = self.peers.get(ip, ConnectionRefusedError(111, "refused"))
        if isinstance(peer, BaseException):
            raise peer
        conn = ScriptedConnection(dict(peer))
        self.connections.append(conn)
        return conn
