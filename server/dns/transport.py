"""The real :class:`server.net.DnsTransport`: one query over UDP or TCP sockets.

UDP: a connected datagram socket (so an ICMP port-unreachable comes back as
ConnectionRefusedError, as glibc's send_dg relies on), one send, one
receive of up to 65535 bytes — the resolver cuts it to its buffer size the way
``recvfrom`` would. TCP: connect, send the two-byte length and the query,
read the length and then exactly that many bytes; a stream that ends early
raises ConnectionResetError. Every step is bounded by ``timeout``.
"""

from __future__ import annotations

import socket
import struct

from server.net import DnsTimeout

_MAX_DATAGRAM = 65535


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class SocketDnsTransport:
    """Talks to real name servers (the system's, dnslib's, unbound's, dnsmasq's)."""

    def exchange(
        self, server: tuple[str, int], query: bytes, *, tcp: bool, timeout: float
    ) -> bytes:
        try:
            if tcp:
                return self._tcp(server, query, timeout)
            return self._udp(server, query, timeout)
        except TimeoutError:
            raise DnsTimeout(f"no answer from {server[0]} port {server[1]}") from None

    def _udp(self, server: tuple[str, int], query: bytes, timeout: float) -> bytes:
        with socket.socket(_family(server[0]), socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect(server)
            sock.send(query)
            return sock.recv(_MAX_DATAGRAM)

    def _tcp(self, server: tuple[str, int], query: bytes, timeout: float) -> bytes:
        with socket.create_connection(server, timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(query)) + query)
            (length,) = struct.unpack("!H", _read_exactly(sock, 2))
            return _read_exactly(sock, length)


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks: list[bytes] = []
    while count:
        chunk = sock.recv(count)
        if not chunk:
            raise ConnectionResetError("name server closed the TCP stream early")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)
