"""Test doubles for the DNS side: an in-process transport answering from a dnslib zone."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, DNSRecord

from server.net import DnsTimeout

UDP_LIMIT = 512


@functools.cache
def _parsed(text: str) -> tuple[RR, ...]:
    return tuple(RR.fromZone(text))


def zone(text: str) -> list[RR]:
    """The records of zone-file ``text`` (parsed once per text: dnslib is slow at it)."""
    return list(_parsed(text))


def answer_from_zone(records: list[RR], query: DNSRecord) -> DNSRecord:
    """Authoritative-style answer: matching records, CNAME chased once per hop."""
    reply = query.reply()
    name = str(query.q.qname).lower().rstrip(".")
    qtype = query.q.qtype
    seen: set[str] = set()
    found_name = False
    while name not in seen:
        seen.add(name)
        owned = [rr for rr in records if str(rr.rname).lower().rstrip(".") == name]
        found_name = found_name or bool(owned)
        match = [rr for rr in owned if qtype in (rr.rtype, QTYPE.ANY)]
        cname = [rr for rr in owned if rr.rtype == QTYPE.CNAME]
        if match:
            for rr in match:
                reply.add_answer(rr)
            break
        if cname:
            reply.add_answer(cname[0])
            name = str(cname[0].rdata.label).lower().rstrip(".")
            continue
        break
    if not found_name:
        reply.header.rcode = RCODE.NXDOMAIN
    return reply


Handler = Callable[[tuple[str, int], bytes, bool], bytes]


@dataclass
class FakeTransport:
    """DnsTransport over a zone, or a custom ``handler(server, query, tcp) -> bytes``."""

    records: list[RR] = field(default_factory=list)
    handler: Handler | None = None
    udp_limit: int = UDP_LIMIT
    log: list[tuple[str, int, str]] = field(default_factory=list)  # (name, type, udp|tcp)

    def exchange(
        self, server: tuple[str, int], query: bytes, *, tcp: bool, timeout: float
    ) -> bytes:
        parsed = DNSRecord.parse(query)
        self.log.append((str(parsed.q.qname).rstrip("."), parsed.q.qtype, "tcp" if tcp else "udp"))
        if self.handler is not None:
            return self.handler(server, query, tcp)
        data: bytes = answer_from_zone(self.records, parsed).pack()
        if not tcp and len(data) > self.udp_limit:
            cut = parsed.reply()
            cut.header.tc = 1
            data = cut.pack()
        return data


def timeout_handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
    raise DnsTimeout("silent")
