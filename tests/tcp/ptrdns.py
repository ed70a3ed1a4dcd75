"""A fake DNS on loopback with PTR records, and a home whose resolv.conf uses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dnslib import PTR, QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSServer

LOOPBACK = "127.0.0.1"
#: The PTR name of 127.0.0.1, mixed case to show who lower-cases it.
NAME = "Mail.Example.ORG."


class PtrZone(BaseResolver):  # type: ignore[misc]
    """127.0.0.1 has a PTR; 127.0.0.2's lookup fails with SERVFAIL."""

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname)
        if name == "1.0.0.127.in-addr.arpa." and request.q.qtype == QTYPE.PTR:
            reply.add_answer(RR(name, QTYPE.PTR, rdata=PTR(NAME), ttl=60))
        elif name == "2.0.0.127.in-addr.arpa.":
            reply.header.rcode = RCODE.SERVFAIL
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def ptr_dns_home(home: Path) -> Iterator[Path]:
    """Run the zone on an ephemeral loopback port while ``home`` points at it."""
    dns = DNSServer(PtrZone(), port=0, address=LOOPBACK)
    dns.start_thread()
    port = dns.server.server_address[1]
    (home / ".qmail-sim").mkdir(exist_ok=True)
    (home / ".qmail-sim" / "resolv.conf").write_text(
        f"nameserver {LOOPBACK}:{port}\noptions timeout:2 attempts:1\n"
    )
    try:
        yield home
    finally:
        dns.stop()
        dns.server.server_close()
