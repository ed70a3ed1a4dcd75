"""dns.c: dns_cname, dns_mxip, dns_ip, the 512-byte cut and qmail-103."""

from __future__ import annotations

import itertools
import struct

import pytest
from dnslib import RR, TXT, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from server.dns.qmaildns import DnsHard, DnsSoft, IpMx, QmailDns, ip_literal, pick_mx
from server.dns.resolver import LibcResolver, ResolverConfig

from .fakes import FakeTransport, zone

ZONE = """
far.example.     300 IN MX 10 mx1.far.example.
far.example.     300 IN MX 10 mx2.far.example.
far.example.     300 IN MX 20 mx3.far.example.
mx1.far.example. 300 IN A 127.0.2.11
mx2.far.example. 300 IN A 127.0.2.12
mx3.far.example. 300 IN A 127.0.2.13
mx3.far.example. 300 IN A 127.0.2.14
alias.example.   300 IN CNAME far.example.
a2.example.      300 IN CNAME alias.example.
loop1.example.   300 IN CNAME loop2.example.
loop2.example.   300 IN CNAME loop1.example.
plain.example.   300 IN A 127.0.3.1
dotmx.example.   300 IN MX 0 .
cnamemx.example. 300 IN MX 10 alias-mx.example.
alias-mx.example. 300 IN CNAME plain.example.
litmx.example.   300 IN MX 5 127.0.4.4.
"""


def big(owner: str, count: int) -> str:
    return "".join(f'{owner}. 300 IN TXT "{"x" * 60}{i}"\n' for i in range(count))


def qdns(records: str = ZONE, patched: bool = False) -> tuple[QmailDns, FakeTransport]:
    transport = FakeTransport(zone(records))
    ids = itertools.count(1)
    return QmailDns(
        LibcResolver(ResolverConfig(), transport, lambda: next(ids)), patched
    ), transport


class TestCname:
    def test_no_alias(self) -> None:
        assert qdns()[0].dns_cname("far.example") == ("far.example", 0)

    def test_chain(self) -> None:
        dns, transport = qdns()
        # the zone answers the first ANY with the whole chain; dns.c takes the first CNAME
        assert dns.dns_cname("a2.example")[0] == "far.example"
        assert all(qtype == 255 for _, qtype, _ in transport.log)

    def test_trailing_dot_costs_a_round(self) -> None:
        assert qdns()[0].dns_cname("far.example.") == ("far.example", 1)

    def test_literal_and_empty(self) -> None:
        dns, transport = qdns()
        assert dns.dns_cname("[1.2.3.4]") == ("[1.2.3.4]", 0)
        assert dns.dns_cname("") == ("", 0)
        assert transport.log == []

    def test_nxdomain_is_not_an_alias(self) -> None:
        assert qdns()[0].dns_cname("nowhere.example") == ("nowhere.example", 0)

    def test_loop_is_hard_after_ten(self) -> None:
        dns, transport = qdns()

        def one_hop(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
            parsed = DNSRecord.parse(query)
            name = str(parsed.q.qname).rstrip(".")
            target = "loop2.example" if name == "loop1.example" else "loop1.example"
            reply = parsed.reply()
            reply.add_answer(*RR.fromZone(f"{name}. 300 IN CNAME {target}."))
            return bytes(reply.pack())

        transport.handler = one_hop
        assert dns.dns_cname("loop1.example") == ("loop1.example", None)
        assert len(transport.log) == 10

    def test_servfail_is_soft(self) -> None:
        dns, transport = qdns()

        def servfail(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
            reply = DNSRecord.parse(query).reply()
            reply.header.rcode = 2
            return bytes(reply.pack())

        transport.handler = servfail
        with pytest.raises(DnsSoft):
            dns.dns_cname("far.example")


class TestOversize:
    def test_unpatched_cut_is_soft(self) -> None:
        dns, transport = qdns(ZONE + big("big.example", 12))
        with pytest.raises(DnsSoft):
            dns.dns_cname("big.example")
        assert [t for _, _, t in transport.log] == ["udp", "tcp"]

    def test_patched_reads_whole(self) -> None:
        dns, transport = qdns(ZONE + big("big.example", 12), patched=True)
        assert dns.dns_cname("big.example") == ("big.example", 0)
        assert [t for _, _, t in transport.log] == ["udp", "tcp", "tcp"]

    def test_just_under_512_is_fine(self) -> None:
        dns, _ = qdns(ZONE + big("ok.example", 6))
        assert dns.dns_cname("ok.example") == ("ok.example", 0)

    def test_cut_inside_last_rdata_goes_unnoticed(self) -> None:
        # one TXT record whose data crosses byte 512: dns.c only skips rdlength
        def handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
            reply = DNSRecord.parse(query).reply()
            reply.add_answer(RR("long.example", 16, rdata=TXT(["y" * 250, "z" * 250])))
            data = bytes(reply.pack())
            if not tcp:
                cut = DNSRecord.parse(query).reply()
                cut.header.tc = 1
                return bytes(cut.pack())
            return data

        dns, transport = qdns()
        transport.handler = handler
        assert dns.dns_cname("long.example") == ("long.example", 0)


class TestMx:
    def test_preference_order_and_random_among_equals(self) -> None:
        dns, _ = qdns()
        seen = set()
        for seed in range(20):
            ips, soft = dns.dns_mxip("far.example", seed * 7919)
            assert not soft
            assert [ix.pref for ix in ips] == [10, 10, 20, 20]
            assert [ix.ip for ix in ips[2:]] == ["127.0.2.13", "127.0.2.14"]
            seen.add(tuple(ix.ip for ix in ips[:2]))
        assert len(seen) == 2  # both orders occur

    def test_pick_mx_is_dns_c_lcg(self) -> None:
        # random = random * 69069 + 1; take j when random/2 < 2147483647/numsame
        mxs = [("a", 10), ("b", 10)]
        assert pick_mx(mxs, 0) == (1, 1)
        assert pick_mx(mxs, 2**40) == (0, (2**40 * 69069 + 1) % 2**64)

    def test_fallback_to_a(self) -> None:
        assert qdns()[0].dns_mxip("plain.example", 0) == ([IpMx("127.0.3.1", 0)], False)

    def test_nxdomain_is_hard(self) -> None:
        with pytest.raises(DnsHard):
            qdns()[0].dns_mxip("nowhere.example", 0)

    def test_literal(self) -> None:
        dns, transport = qdns()
        assert dns.dns_mxip("[127.0.0.300]", 0) == ([IpMx("127.0.0.44", 0)], False)
        assert dns.dns_mxip("10.1.2.3", 0) == ([IpMx("10.1.2.3", 0)], False)
        assert transport.log == []

    def test_mx_dot_queries_root_a(self) -> None:
        dns, transport = qdns()
        assert dns.dns_mxip("dotmx.example", 0) == ([], False)
        assert transport.log[-1][:2] == ("", 1)  # "." for A: the root

    def test_mx_to_cname(self) -> None:
        # the A query for the MX host follows the CNAME (findip skips the CNAME record)
        assert qdns()[0].dns_mxip("cnamemx.example", 0) == ([IpMx("127.0.3.1", 10)], False)

    def test_mx_host_ip_literal_gets_pref_zero(self) -> None:
        assert qdns()[0].dns_mxip("litmx.example", 0) == ([IpMx("127.0.4.4", 0)], False)

    def test_soft_mx_host_is_reported(self) -> None:
        dns, transport = qdns()
        inner = FakeTransport(zone(ZONE))

        def flaky(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
            parsed = DNSRecord.parse(query)
            if str(parsed.q.qname).startswith("mx1."):
                reply = parsed.reply()
                reply.header.rcode = 2
                return bytes(reply.pack())
            return inner.exchange(server, query, tcp=tcp, timeout=1)

        transport.handler = flaky
        ips, soft = dns.dns_mxip("far.example", 0)
        assert soft and "127.0.2.11" not in [ix.ip for ix in ips] and len(ips) == 3


def test_ip_literal_rules() -> None:
    assert ip_literal("[1.2.3.4]") == "1.2.3.4"
    assert ip_literal("1.2.3.4") == "1.2.3.4"
    assert ip_literal("1.2.3.4.example") is None
    assert ip_literal("[1.2.3]") is None
    assert ip_literal("") is None


def _answer_packet(query: bytes, body: bytes, ancount: int, rcode: int = 0) -> bytes:
    header = struct.pack(
        "!HHHHHH", struct.unpack("!H", query[:2])[0], 0x8180 | rcode, 1, ancount, 0, 0
    )
    return header + query[12:] + body


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=120),
    ancount=st.integers(min_value=0, max_value=6),
    shape=st.sampled_from(["our question", "our id only", "anything"]),
    qtype=st.sampled_from(["cname", "mx", "ip"]),
)
def test_random_answers_only_soft_hard_or_results(
    body: bytes, ancount: int, shape: str, qtype: str
) -> None:
    """Pointer loops, cut records, wrong ids, junk: a result, DNS_SOFT or DNS_HARD."""

    def handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        if shape == "anything":
            return body
        if shape == "our id only":
            return query[:2] + body
        return _answer_packet(query, body, ancount)

    dns, transport = qdns()
    transport.handler = handler
    try:
        if qtype == "cname":
            name, _ = dns.dns_cname("x.example")
            assert isinstance(name, str)
        elif qtype == "mx":
            ips, _ = dns.dns_mxip("x.example", 1)
            assert all(isinstance(ix.ip, str) for ix in ips)
        else:
            dns.dns_ip("x.example")
    except (DnsSoft, DnsHard):
        pass


class TestMalformed:
    def _with(self, make: object) -> QmailDns:
        dns, transport = qdns()
        transport.handler = make  # type: ignore[assignment]
        return dns

    def test_ancount_larger_than_records(self) -> None:
        def handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
            reply = DNSRecord.parse(query).reply()
            reply.add_answer(*RR.fromZone("x.example. 300 IN A 10.0.0.1"))
            data = bytearray(reply.pack())
            data[7] = 2  # ancount 2, one record
            return bytes(data)

        with pytest.raises(DnsSoft, match="past the end"):
            self._with(handler).dns_ip("x.example")

    def test_record_header_cut(self) -> None:
        def handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
            reply = DNSRecord.parse(query).reply()
            reply.add_answer(*RR.fromZone("x.example. 300 IN A 10.0.0.1"))
            return bytes(reply.pack())[:-8]

        with pytest.raises(DnsSoft, match="record header"):
            self._with(handler).dns_ip("x.example")

    def test_pointer_loop_in_answer(self) -> None:
        def handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
            head = _answer_packet(query, b"", 1)
            loop = struct.pack("!H", 0xC000 | len(head))
            return head + loop + struct.pack("!HHIH", 1, 1, 300, 4) + b"\x0a\0\0\x01"

        with pytest.raises(DnsSoft, match="loop"):
            self._with(handler).dns_cname("x.example")


def test_dns_ptr() -> None:
    dns, transport = qdns(ZONE + "4.3.2.1.in-addr.arpa. 300 IN PTR host.example.\n")
    assert dns.dns_ptr("1.2.3.4") == "host.example"
    assert transport.log[-1][:2] == ("4.3.2.1.in-addr.arpa", 12)
    with pytest.raises(DnsHard):
        dns.dns_ptr("5.6.7.8")


class TestCutAddressList:
    """dns_ipplus appends as it reads: a cut A answer keeps the records before the cut."""

    CUT = (
        "far.example. 300 IN MX 10 mxhost1.far.example.\n"
        "far.example. 300 IN MX 20 mxhost2.far.example.\n"
        + "".join(f"mxhost1.far.example. 300 IN A 127.0.4.{10 + i}\n" for i in range(40))
        + "mxhost2.far.example. 300 IN A 127.0.2.20\n"
    )

    def test_mxip_keeps_the_addresses_read_and_goes_on(self) -> None:
        ips, soft = qdns(self.CUT)[0].dns_mxip("far.example", 0)
        assert soft
        # 37 bytes of head, 16 per record: 29 whole records, then a cut header
        assert [ix.ip for ix in ips] == [f"127.0.4.{10 + i}" for i in range(29)] + ["127.0.2.20"]
        assert {ix.pref for ix in ips[:29]} == {10}

    def test_dns_ip_is_soft_whatever_it_read(self) -> None:
        with pytest.raises(DnsSoft):
            qdns(self.CUT)[0].dns_ip("mxhost1.far.example")

    def test_patched_reads_all(self) -> None:
        ips, soft = qdns(self.CUT, patched=True)[0].dns_mxip("far.example", 0)
        assert not soft and len(ips) == 41
