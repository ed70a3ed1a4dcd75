"""The fake DNS given garbage: no answer or a well-formed one, never an exception.

A real server (BIND) drops what has no readable header and what is itself a
response, and answers FORMERR, echoing the id, to a query it cannot parse.
The properties drive the UDP and TCP packet handlers the loopback server
uses, with fake transports instead of sockets.
"""

from __future__ import annotations

import asyncio
import struct

from dnslib import EDNS0, RCODE, DNSRecord
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.fakedns import FakeDns, TcpClient, UdpServer
from harness.scenario.model import DnsRule, DnsSpec

ZONE = """\
far.example.      300 IN MX 10 mx.far.example.
mx.far.example.   300 IN A  127.0.2.10
alias.example.    300 IN CNAME far.example.
*.wild.example.   60  IN MX 5 mx.wild.example.
"""
RULES = (
    DnsRule(name="far.example", type="ANY", pad_to=600),
    DnsRule(name="alias.example", type="ANY", minimal_any=True),
    DnsRule(name="mx.far.example", type="TXT", rcode="SERVFAIL"),
)
HOST = "127.0.0.53"


def label_run(n: int, size: int = 63) -> bytes:
    return (bytes([size]) + b"a" * size) * n


def wire_query(name: bytes, *, ident: int = 0x1234, flags: int = 0x0100, qtype: int = 1) -> bytes:
    """A query with one question whose name is given in wire form."""
    return struct.pack("!6H", ident, flags, 1, 0, 0, 0) + name + struct.pack("!HH", qtype, 1)


#: Four 63-byte labels under a wildcard: 270 bytes on the wire, over RFC 1035's 255.
LONG = wire_query(label_run(4) + b"\x04wild\x07example\x00")


def make() -> FakeDns:
    dns = FakeDns(DnsSpec(zone=ZONE, servers=(HOST,), rules=RULES), lambda: 0.0)
    dns.answer_everywhere = True
    return dns


def valid_queries() -> list[bytes]:
    out = [LONG]
    for name in ("far.example", "alias.example", "mx.far.example", "x.wild.example", "no.pe"):
        for qtype in ("A", "MX", "ANY", "TXT"):
            query = DNSRecord.question(name, qtype)
            query.header.id = len(out)  # not dnslib's random one: examples must replay
            out.append(bytes(query.pack()))
            query.add_ar(EDNS0(udp_len=4096))
            out.append(bytes(query.pack()))
    return out


VALID = valid_queries()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid query with bytes changed, cut off or added."""
    packet = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 4))):
        packet[draw(st.integers(0, len(packet) - 1))] = draw(st.integers(0, 255))
    packet = packet[: draw(st.integers(0, len(packet)))] if draw(st.booleans()) else packet
    return bytes(packet) + draw(st.binary(max_size=40))


@st.composite
def odd_names(draw: st.DrawFn) -> bytes:
    """A header and one question whose labels are any bytes, of any length up to 63."""
    labels = draw(st.lists(st.binary(min_size=1, max_size=63), max_size=8))
    name = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    return wire_query(name, ident=draw(st.integers(0, 0xFFFF)), qtype=draw(st.integers(0, 300)))


PACKETS = st.one_of(st.binary(max_size=600), mutated(), odd_names())


def well_formed(answer: bytes, query: bytes) -> None:
    record = DNSRecord.parse(answer)  # raises if it is not a DNS message
    assert record.header.qr == 1
    assert answer[:2] == query[:2]  # the id of the query it answers


class FakeDatagramTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: object = None) -> None:
        self.sent.append(bytes(data))


class FakeStreamWriter:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def over_udp(packet: bytes) -> list[bytes]:
    transport = FakeDatagramTransport()
    protocol = UdpServer(make(), HOST)
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.datagram_received(packet, ("127.0.0.1", 5300))
    return transport.sent


def over_tcp(stream: bytes, dns: FakeDns | None = None) -> list[bytes]:
    """What the TCP handler writes for ``stream``, split at the length prefixes."""

    async def main() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(stream)
        reader.feed_eof()
        writer = FakeStreamWriter()
        await TcpClient(dns or make(), HOST)(reader, writer)  # type: ignore[arg-type]
        assert writer.closed
        return writer.data

    data = asyncio.run(main())
    answers = []
    while data:
        (size,) = struct.unpack("!H", data[:2])
        answers.append(data[2 : 2 + size])
        assert len(answers[-1]) == size
        data = data[2 + size :]
    return answers


def test_a_question_name_over_255_bytes_gets_formerr_with_its_id() -> None:
    for answers in (over_udp(LONG), over_tcp(struct.pack("!H", len(LONG)) + LONG)):
        assert len(answers) == 1
        well_formed(answers[0], LONG)
        assert DNSRecord.parse(answers[0]).header.rcode == RCODE.FORMERR


def test_a_name_of_exactly_255_bytes_is_answered() -> None:
    # 3 x 64 + 62 + 1 = 255 bytes on the wire: the longest legal name.
    query = wire_query(label_run(3) + label_run(1, 61) + b"\x00")
    (answer,) = over_udp(query)
    well_formed(answer, query)
    assert DNSRecord.parse(answer).header.rcode == RCODE.NXDOMAIN


def test_unparseable_queries_get_formerr_and_short_packets_or_responses_nothing() -> None:
    garbage = struct.pack("!6H", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x05abc"  # a name cut short
    (answer,) = over_udp(garbage)
    well_formed(answer, garbage)
    record = DNSRecord.parse(answer)
    assert record.header.rcode == RCODE.FORMERR and record.header.rd == 1
    assert over_udp(b"\x00\x01garbage") == []  # shorter than a header: nothing to answer
    response = struct.pack("!6H", 0xBEEF, 0x8100, 1, 0, 0, 0) + b"\x05abc"
    assert over_udp(response) == []  # QR set: never answer an answer


def test_a_query_without_exactly_one_question_gets_formerr() -> None:
    # RFC 9619: a QUERY with QDCOUNT > 1 is malformed; none leaves nothing to answer.
    two = DNSRecord.question("far.example", "A")
    two.add_question(*DNSRecord.question("mx.far.example", "A").questions)
    two.header.id = 6
    none = struct.pack("!6H", 7, 0x0100, 0, 0, 0, 0)
    for query in (bytes(two.pack()), none):
        (answer,) = over_udp(query)
        well_formed(answer, query)
        assert DNSRecord.parse(answer).header.rcode == RCODE.FORMERR


def test_a_wildcard_answer_keeps_the_question_labels_as_they_came() -> None:
    # A label holding a dot is legal on the wire; read as text it would be two.
    query = wire_query(b"\x03a.b\x04wild\x07example\x00", qtype=15)
    (answer,) = over_udp(query)
    well_formed(answer, query)
    assert DNSRecord.parse(answer).rr[0].rname.label == (b"a.b", b"wild", b"example")


def test_a_tcp_answer_too_long_for_its_length_prefix_is_truncated() -> None:
    # RFC 1035 4.2.2: two bytes of length; past 65535 the answer says TC, as over UDP.
    big = DnsRule(name="big.example", pad_to=70000)
    dns = FakeDns(DnsSpec(zone=ZONE, servers=(HOST,), rules=(big,)), lambda: 0.0)
    query = wire_query(b"\x03big\x07example\x00", qtype=16)
    (answer,) = over_tcp(struct.pack("!H", len(query)) + query, dns)
    well_formed(answer, query)
    assert DNSRecord.parse(answer).header.tc == 1


@settings(deadline=None, max_examples=400)  # a busy CI machine is slow, not wrong
@given(PACKETS)
@example(LONG)
def test_any_udp_packet_gets_silence_or_one_well_formed_answer(packet: bytes) -> None:
    answers = over_udp(packet)
    assert len(answers) <= 1
    for answer in answers:
        well_formed(answer, packet)


@settings(deadline=None, max_examples=200)  # a busy CI machine is slow, not wrong
@given(st.lists(PACKETS, max_size=3), st.binary(max_size=3))
@example([LONG], b"")
def test_any_tcp_stream_gets_well_formed_answers_only(packets: list[bytes], tail: bytes) -> None:
    stream = b"".join(struct.pack("!H", len(p)) + p for p in packets) + tail
    answers = over_tcp(stream)
    assert len(answers) <= len(packets)
    queries = iter(packets)
    for answer in answers:  # in the queries' order; some get no answer
        well_formed(answer, next(q for q in queries if q[:2] == answer[:2]))
