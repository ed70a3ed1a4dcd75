"""The real :class:`server.net.Connector`: IPv4 TCP to an SMTP peer (timeoutconn.c).

qmail connects without binding (``XXX: could bind s``), waits up to
``timeoutconnect`` seconds and reports a timeout apart from every other
failure, because lock/tcpto only counts timeouts. :meth:`SocketConnection.recv`
and :meth:`SocketConnection.send` are bounded the way timeoutread and
timeoutwrite bound them (``timeoutremote``).
"""

from __future__ import annotations

import socket


class SocketConnection:
    def __init__(self, sock: socket.socket, write_timeout: float) -> None:
        self._sock = sock
        self._write_timeout = write_timeout

    def send(self, data: bytes) -> None:
        self._sock.settimeout(self._write_timeout)
        self._sock.sendall(data)

    def recv(self, timeout: float) -> bytes:
        self._sock.settimeout(timeout)
        return self._sock.recv(4096)

    def close(self) -> None:
        self._sock.close()


class SocketConnector:
    """Opens real sockets; ``write_timeout`` is timeoutremote for sends."""

    def __init__(self, write_timeout: float = 1200.0) -> None:
        self.write_timeout = write_timeout

    def connect(
        self, ip: str, port: int, *, timeout: float, local_ip: str | None = None
    ) -> SocketConnection:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if local_ip is not None:
                sock.bind((local_ip, 0))
            sock.settimeout(timeout)
            sock.connect((ip, port))
            # qmail leaves Nagle on; its 1024-byte body writes then meet the peer's
            # delayed ACK (~40 ms a message on Linux loopback). Packet boundaries are
            # not something a peer can see in SMTP, so we turn it off.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        return SocketConnection(sock, self.write_timeout)


def system_local_ips() -> list[str]:
    """ipme_init() on this machine (through qmail-smtpd's ipme module)."""
    from server.smtpd.ipme import local_ips

    return sorted(".".join(map(str, ip)) for ip in local_ips())
