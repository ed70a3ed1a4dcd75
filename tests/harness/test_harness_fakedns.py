"""The fake DNS: zone answers, every rule kind, query records, and the loopback server."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from dnslib import QTYPE, RCODE, RR, TXT, A, DNSLabel, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.fakedns import FakeDns, _pad, malform
from harness.scenario.model import DnsRule, DnsSpec
from server.net import DnsTimeout

ZONE = """\
far.example.      300 IN MX 10 mx.far.example.
mx.far.example.   300 IN A  127.0.2.10
alias.example.    300 IN CNAME far.example.
loop1.example.    300 IN CNAME loop2.example.
loop2.example.    300 IN CNAME loop1.example.
"""
SERVER = ("127.0.0.53", 53)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(*rules: DnsRule) -> tuple[FakeDns, Clock]:
    clock = Clock()
    return FakeDns(DnsSpec(zone=ZONE, rules=rules), clock, 0.0), clock


def ask(dns: FakeDns, name: str, qtype: str, *, tcp: bool = False) -> DNSRecord:
    return DNSRecord.parse(
        dns.exchange(SERVER, DNSRecord.question(name, qtype).pack(), tcp=tcp, timeout=5)
    )


def test_zone_answers_mx_a_and_any() -> None:
    dns, _ = make()
    mx = ask(dns, "far.example", "MX")
    assert mx.header.rcode == RCODE.NOERROR and str(mx.rr[0].rdata) == "10 mx.far.example."
    assert str(ask(dns, "MX.FAR.EXAMPLE.", "A").rr[0].rdata) == "127.0.2.10"
    assert ask(dns, "nowhere.example", "A").header.rcode == RCODE.NXDOMAIN
    nodata = ask(dns, "far.example", "TXT")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr


def test_cname_chains_are_followed_and_loops_stop() -> None:
    dns, _ = make()
    chain = ask(dns, "alias.example", "MX")
    assert [QTYPE[r.rtype] for r in chain.rr] == ["CNAME", "MX"]
    assert [QTYPE[r.rtype] for r in ask(dns, "alias.example", "ANY").rr] == ["CNAME"]
    loop = ask(dns, "loop1.example", "A")
    assert [QTYPE[r.rtype] for r in loop.rr] == ["CNAME", "CNAME"]


def test_rcode_times_and_time_window() -> None:
    dns, clock = make(
        DnsRule(name="far.example", type="ANY", rcode="SERVFAIL", times=2),
        DnsRule(name="far.example", type="MX", rcode="REFUSED", after=3600),
    )
    assert ask(dns, "far.example", "ANY").header.rcode == RCODE.SERVFAIL
    assert ask(dns, "far.example", "ANY").header.rcode == RCODE.SERVFAIL
    assert ask(dns, "far.example", "ANY").header.rcode == RCODE.NOERROR
    assert ask(dns, "far.example", "MX").header.rcode == RCODE.NOERROR
    clock.t = 3600
    assert ask(dns, "far.example", "MX").header.rcode == RCODE.REFUSED


def test_timeout_and_wrong_server_raise_dns_timeout() -> None:
    dns, _ = make(DnsRule(name="far.example", timeout=True))
    with pytest.raises(DnsTimeout):
        ask(dns, "far.example", "A")
    with pytest.raises(DnsTimeout):
        dns.exchange(
            ("127.0.0.99", 53), DNSRecord.question("mx.far.example").pack(), tcp=False, timeout=5
        )
    assert [str(q).split(" +")[0] for q in dns.queries] == [
        "far.example A udp @127.0.0.53",
        "mx.far.example A udp @127.0.0.99",
    ]


def test_padding_truncates_over_udp_and_is_whole_over_tcp() -> None:
    dns, _ = make(DnsRule(name="far.example", type="ANY", pad_to=600))
    udp = dns.exchange(
        SERVER, DNSRecord.question("far.example", "ANY").pack(), tcp=False, timeout=5
    )
    assert len(udp) <= 512 and udp[2] & 0x02  # TC
    tcp = dns.exchange(SERVER, DNSRecord.question("far.example", "ANY").pack(), tcp=True, timeout=5)
    assert len(tcp) > 600 and not tcp[2] & 0x02
    assert QTYPE[DNSRecord.parse(tcp).rr[0].rtype] == "MX"
    assert [q.transport for q in dns.queries] == ["udp", "tcp"]


def test_tc_rule_minimal_any_and_canned_answers() -> None:
    dns, _ = make(
        DnsRule(name="far.example", type="A", tc=True),
        DnsRule(name="far.example", type="ANY", minimal_any=True),
        DnsRule(name="x.example", answer=("x.example. 60 IN CNAME far.example.",)),
    )
    assert ask(dns, "far.example", "A").header.tc == 1
    hinfo = ask(dns, "far.example", "ANY").rr
    assert len(hinfo) == 1 and hinfo[0].rtype == QTYPE.HINFO
    assert hinfo[0].rdata.data == b"\x07RFC8482\x00"
    assert str(ask(dns, "x.example", "MX").rr[0].rdata) == "far.example."


@pytest.mark.parametrize("how", ["truncated", "pointer_loop", "wrong_id", "other_question"])
def test_malformed_answers_are_broken_as_asked(how: str) -> None:
    dns, _ = make(DnsRule(name="far.example", malformed=how))
    query = DNSRecord.question("far.example", "MX")
    wire = dns.exchange(SERVER, query.pack(), tcp=True, timeout=5)
    if how == "wrong_id":
        assert DNSRecord.parse(wire).header.id != query.header.id
    elif how == "other_question":
        assert str(DNSRecord.parse(wire).q.qname) == "other.far.example."
    else:
        with pytest.raises(Exception):  # noqa: B017 - dnslib raises several kinds
            DNSRecord.parse(wire)
    assert malform(wire, "truncated") != wire


def test_garbage_queries_get_no_answer() -> None:
    dns, _ = make()
    assert dns.respond(b"\x00\x01garbage", tcp=False, server="127.0.0.53") is None


@pytest.mark.live
def test_the_loopback_server_answers_udp_and_tcp() -> None:
    from harness.fakedns import serve

    dns, _ = make(DnsRule(name="far.example", type="ANY", pad_to=600))

    async def main() -> tuple[bytes, bytes]:
        udp, tcp, port = await serve(dns, "127.0.0.1", 0)
        try:
            return await asyncio.to_thread(_client, port)
        finally:
            udp.close()
            tcp.close()
            await tcp.wait_closed()

    small, big = asyncio.run(main())
    assert DNSRecord.parse(small).header.tc == 1
    assert len(big) > 600 and DNSRecord.parse(big).rr


def _client(port: int) -> tuple[bytes, bytes]:
    query = DNSRecord.question("far.example", "ANY").pack()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(query, ("127.0.0.1", port))
        small = s.recv(4096)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack("!H", len(query)) + query)
        (size,) = struct.unpack("!H", s.recv(2))
        big = b""
        while len(big) < size:
            big += s.recv(size - len(big))
    return small, big


@settings(deadline=None)  # a busy CI machine is slow, not wrong
@given(st.binary(max_size=300), st.booleans())
def test_any_packet_gets_bytes_or_silence(packet: bytes, tcp: bool) -> None:
    dns, _ = make(DnsRule(name="far.example", pad_to=600))
    answer = dns.respond(packet, tcp=tcp, server="127.0.0.53")
    assert answer is None or isinstance(answer, bytes)


@settings(deadline=None)  # a busy CI machine is slow, not wrong
@given(
    st.sampled_from(
        [
            "far.example",
            "mx.far.example",
            "alias.example",
            "loop1.example",
            "nope.example",
            "FAR.example.",
        ]
    ),
    st.sampled_from(["A", "MX", "ANY", "CNAME", "TXT", "AAAA"]),
    st.booleans(),
)
def test_every_answer_parses_and_echoes_the_question(name: str, qtype: str, tcp: bool) -> None:
    dns, _ = make()
    query = DNSRecord.question(name, qtype)
    answer = DNSRecord.parse(dns.exchange(SERVER, query.pack(), tcp=tcp, timeout=5))
    assert answer.header.id == query.header.id and answer.q == query.q


def test_wildcards_answer_for_names_that_do_not_exist() -> None:
    dns = FakeDns(
        DnsSpec(
            zone="*.wild.example. 60 IN MX 5 mx.wild.example.\n"
            "mx.wild.example. 60 IN A 127.0.2.99\n"
        ),
        lambda: 0.0,
    )
    answer = ask(dns, "anything.wild.example", "MX")
    assert str(answer.rr[0].rname) == "anything.wild.example."
    assert str(answer.rr[0].rdata) == "5 mx.wild.example."
    assert str(ask(dns, "mx.wild.example", "A").rr[0].rdata) == "127.0.2.99"


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=70_000),
    name=st.sampled_from(["far.example", "a.b.c.example.org"]),
)
def test_padding_grows_an_answer_just_past_the_size(size: int, name: str) -> None:
    """fakedns._pad counts each record's bytes instead of packing after each:
    the answer is past ``size``, and would not be without its last record."""
    reply = DNSRecord.question(name, "ANY").reply()
    reply.add_answer(RR(name, QTYPE.A, rdata=A("127.0.0.1"), ttl=300))
    _pad(reply, DNSLabel(name), size)
    assert len(reply.pack()) > size
    padding = [rr for rr in reply.rr if rr.rtype == QTYPE.TXT]
    if padding:
        reply.rr.remove(padding[-1])
        assert len(reply.pack()) <= size
    assert all(isinstance(rr.rdata, TXT) for rr in padding)
