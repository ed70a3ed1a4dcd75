"""Real peers on loopback for live tests and the benchmark: dnslib DNS, aiosmtpd SMTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from dnslib import RR, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from .dns.fakes import answer_from_zone


class _Udp512Handler(DNSHandler):  # type: ignore[misc]
    """Over UDP, an answer longer than 512 bytes becomes header + question with TC.

    dnslib's own ``udplen`` truncation drops the question section too, and
    glibc's res_queriesmatch ignores such an answer (qdcount differs), so the
    query would just time out; real servers keep the question.
    """

    def get_reply(self, data: bytes) -> bytes:
        reply: bytes = super().get_reply(data)
        if self.protocol == "udp" and len(reply) > 512:
            cut = DNSRecord.parse(data).reply()
            cut.header.tc = 1
            reply = cut.pack()
        return reply


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, records: list[RR]) -> None:
        self.records = records

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        return answer_from_zone(self.records, request)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def dns_server(zone_text: str, host: str = "127.0.0.1") -> Iterator[int]:
    """A dnslib server answering ``zone_text`` over UDP and TCP; yields its port."""
    resolver = _ZoneResolver(list(RR.fromZone(zone_text)))
    logger = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
    for _ in range(20):
        port = free_port(host)
        try:
            udp = DNSServer(
                resolver, address=host, port=port, handler=_Udp512Handler, logger=logger
            )
            tcp = DNSServer(resolver, address=host, port=port, tcp=True, logger=logger)
        except OSError:
            continue
        break
    else:
        raise RuntimeError("no free port for the DNS server")
    udp.start_thread()
    tcp.start_thread()
    try:
        yield port
    finally:
        for server in (udp, tcp):
            server.server.shutdown()
            server.server.server_close()
            server.thread.join(5)


@dataclass
class SmtpSink:
    """aiosmtpd handler: accepts, or answers RCPT/DATA as scripted; counts messages."""

    rcpt_reply: str = "250 OK"
    data_reply: str = "250 OK"
    messages: list[bytes] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.rcpt_reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("2"):
            self.messages.append(bytes(envelope.original_content or b""))
        return self.data_reply


@contextmanager
def smtp_server(sink: SmtpSink, host: str = "127.0.0.1") -> Iterator[int]:
    port = free_port(host)
    controller = Controller(sink, hostname=host, port=port, decode_data=False)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
