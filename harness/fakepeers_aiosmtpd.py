"""A fake peer on loopback built on aiosmtpd, for live runs that want a stock SMTP server.

:func:`harness.fakepeers.serve` replays a peer's whole script (greeting,
stalls, drops, delays) on a socket. This variant lets aiosmtpd speak SMTP and
only asks the script for the MAIL, RCPT (per recipient), DATA-end and
greeting-host answers, recording into the same :class:`PeerSession` objects —
useful to check that a behaviour does not depend on our own server loop.
Stalls, drops and multi-line replies are not available here.
"""

from __future__ import annotations

from typing import Any

from aiosmtpd.controller import Controller

from harness.fakepeers import FakePeers, PeerSession


class _Handler:
    def __init__(self, peers: FakePeers, ip: str) -> None:
        self.peers = peers
        self.ip = ip
        self.sessions: dict[int, PeerSession] = {}

    def _session(self, session: Any) -> PeerSession:
        key = id(session)
        if key not in self.sessions:
            self.sessions[key] = self.peers.open(self.ip, 25)
            self.sessions[key].pending()  # the greeting is aiosmtpd's own
        return self.sessions[key]

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self._session(session).helo = hostname
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        self._session(session).helo = hostname
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        peer = self._session(session)
        peer.mail_from = address
        if peer.script.mail.startswith("2"):
            envelope.mail_from = address
        return _one_line(peer.script.mail)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        peer = self._session(session)
        replies = peer.script.rcpt
        reply = replies.get(address, replies.get("*", "250 ok"))
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            peer.rcpt.append(address)
        else:
            peer.rejected.append(address)
        return _one_line(reply)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        peer = self._session(session)
        content = envelope.original_content or envelope.content or b""
        peer.data = content.replace(b"\r\n", b"\n")
        peer.delivered = peer.script.end.startswith("2")
        return _one_line(peer.script.end.replace("{n}", str(len(self.sessions))))


def _one_line(reply: str) -> str:
    return reply.split("\n")[-1]


def controller(peers: FakePeers, ip: str, host: str, port: int) -> Controller:
    """An aiosmtpd Controller for peer ``ip`` on ``host:port``; call start()/stop()."""
    return Controller(_Handler(peers, ip), hostname=host, port=port)
