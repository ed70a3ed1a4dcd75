"""The network seams: how qmail-remote reaches DNS servers and SMTP peers.

Protocol cores never open sockets. qmail-remote's resolver is handed a
:class:`DnsTransport` and its SMTP client a :class:`Connector`. The real
implementations use sockets; the harness's fake DNS and fake peers implement
the same protocols in-process (the simulator) or serve real sockets on
loopback (the live target).
"""

from __future__ import annotations

from typing import Protocol


class DnsTimeout(Exception):
    """No answer from a DNS server within the time allowed."""


class DnsTransport(Protocol):
    def exchange(
        self, server: tuple[str, int], query: bytes, *, tcp: bool, timeout: float
    ) -> bytes:
        """Send one query in DNS wire format to ``server``; return the raw response.

        Over UDP the response is whatever one datagram held (it may have the TC
        bit set); over TCP, the message without its two-byte length prefix.
        Raises :class:`DnsTimeout` for no answer and :class:`ConnectionRefusedError`
        when the server's port is closed (ICMP unreachable over UDP, RST over TCP).
        """
        ...


class Connection(Protocol):
    """One TCP connection to an SMTP peer."""

    def send(self, data: bytes) -> None:
        """Send all of ``data``; raises OSError if the peer went away."""
        ...

    def recv(self, timeout: float) -> bytes:
        """Up to a buffer's worth of bytes; ``b""`` at end of stream.

        Raises :class:`TimeoutError` when nothing arrives within ``timeout``.
        """
        ...

    def close(self) -> None: ...


class Connector(Protocol):
    def connect(
        self, ip: str, port: int, *, timeout: float, local_ip: str | None = None
    ) -> Connection:
        """Open a TCP connection. Raises TimeoutError, ConnectionRefusedError or OSError."""
        ...
