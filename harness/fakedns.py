"""The scripted fake DNS: a zone plus rules, answering in real DNS wire format.

:class:`FakeDns` holds a zone (zone-file text parsed by dnslib) and the
scenario's rules (``dns.rules``: rcode, timeout, padding, TC, RFC 8482
minimal ANY, malformed packets, canned answers, limited by ``times`` and by
virtual time ``after``/``until``). :meth:`FakeDns.respond` turns one query
packet into one response packet (or ``None``: no answer at all); it records
every query it sees for ``expect: dns_queries``.

It is reached two ways with the same answers:

- in-process, as a :class:`server.net.DnsTransport` (:meth:`FakeDns.exchange`),
  for the simulator: a query to an address not in ``servers`` times out, the
  way a wrong ``resolv.conf`` entry does;
- over real UDP and TCP on loopback (:func:`serve`), for live runs and
  ``qmail-sim dns``.

Over UDP an answer longer than 512 bytes (RFC 1035 4.2.1; more if the query
carries an EDNS0 OPT record) is replaced by a header with the TC bit and the
question, as real servers do; over TCP the whole answer is sent.
"""

from __future__ import annotations

import asyncio
import errno
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dnslib import CNAME, QTYPE, RCODE, RD, RR, TXT, DNSLabel, DNSRecord, ZoneParser

from harness.scenario.model import DnsRule, DnsSpec
from server.net import DnsTimeout

UDP_LIMIT = 512  # RFC 1035 4.2.1: UDP messages are limited to 512 bytes
TCP_LIMIT = 65535  # RFC 1035 4.2.2: a TCP message's length is a two-byte prefix
HEADER = 12  # RFC 1035 4.1.1: the fixed header; a shorter packet has no id to answer
MAX_NAME = 255  # RFC 1035 2.3.4: a name is 255 octets or less in wire form
PORT_TRIES = 5  # serve() on port 0: TCP ports tried for a free UDP twin
MAX_CHAIN = 8  # CNAME hops followed inside the zone before giving up (a loop)


@dataclass(frozen=True, kw_only=True)
class DnsQuery:
    """One query the fake DNS saw."""

    name: str
    type: str
    transport: str  # "udp" or "tcp"
    server: str
    time: float  # seconds since the scenario's start

    def __str__(self) -> str:
        return f"{self.name} {self.type} {self.transport} @{self.server} +{self.time:g}s"

    def matches(self, pattern: str) -> bool:
        """``name [TYPE] [udp|tcp] [@server]``, in any order after the name."""
        words = pattern.split()
        if not words or words[0].rstrip(".").lower() != self.name:
            return False
        for word in words[1:]:
            low = word.lower()
            if low in ("udp", "tcp"):
                if low != self.transport:
                    return False
            elif word.startswith("@"):
                if word[1:] != self.server:
                    return False
            elif word.upper() != self.type:
                return False
        return True


def _norm(name: object) -> str:
    return str(name).rstrip(".").lower()


class ZoneError(ValueError):
    """A record of zone-file text that dnslib cannot read, and the line it starts on."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    @property
    def offset(self) -> int:
        """Lines below the text's first, as the scenario loader places a ValueError."""
        return self.line - 1


def parse_zone(text: str) -> list[RR]:
    """The records of zone-file text, as ``RR.fromZone`` reads them; ZoneError if one is bad.

    dnslib's parser knows no line numbers: :class:`_RecordLines` watches the
    tokens it reads and remembers where the record being read began.
    """
    parser = ZoneParser(text)
    watch = _RecordLines(parser.l, text)
    parser.i = watch.tokens(parser.i)
    try:
        return list(parser)
    except Exception as exc:  # dnslib raises many kinds; all mean "not a record"
        detail = "too few fields" if isinstance(exc, IndexError) else str(exc)
        raise ZoneError(detail, watch.start) from None


class _RecordLines:
    """The line where the record a ZoneParser is reading starts.

    A record starts at the first word after a newline outside parentheses
    (or at blanks after a newline: a record of the previous owner); the
    parser raises on the newline that ends it, before reading further.
    """

    def __init__(self, lexer: Any, text: str) -> None:
        self.lexer = lexer
        self.text = text
        self.start = 1
        self._pos = self._line = 0  # a position and the newlines before it

    def _line_now(self) -> int:
        pos = self.lexer.f.tell() - len(self.lexer.q)  # read, less what was pushed back
        if pos < self._pos:
            self._pos = self._line = 0
        self._line += self.text.count("\n", self._pos, pos)
        self._pos = pos
        return self._line + 1

    def tokens(self, source: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
        between, paren, prev = True, False, None
        while True:
            try:
                tok, val = next(source)
            except StopIteration:
                return
            except Exception:  # the lexer's own errors ("Invalid input")
                self.start = self._line_now()
                raise
            if tok == "NL" and not paren:
                between = True
            elif between and (tok == "ATOM" or (tok == "SPACE" and prev == "NL")):
                self.start, between = self._line_now(), False
            if tok == "ATOM" and val in ("(", ")"):
                paren = val == "("
            prev = tok
            yield tok, val


class Zone:
    """Records by owner name, with CNAME chasing the way an authoritative server does."""

    def __init__(self, text: str) -> None:
        self.records: dict[str, list[RR]] = {}
        for rr in parse_zone(text) if text.strip() else []:
            self.records.setdefault(_norm(rr.rname), []).append(rr)

    def exists(self, name: str) -> bool:
        return name in self.records or any(n.endswith("." + name) for n in self.records)

    def records_for(self, name: str, owner: DNSLabel | None = None) -> list[RR]:
        """The name's records, or a wildcard's (``*.example.``) renamed to it (RFC 4592).

        ``owner`` is the name as it came on the wire, for the renamed records:
        its labels may hold bytes (a dot, say) that the text ``name`` cannot.
        """
        if name in self.records or self.exists(name):
            return self.records.get(name, [])
        labels = name.split(".")
        for i in range(1, len(labels)):
            wild = self.records.get("*." + ".".join(labels[i:]))
            if wild:
                rname = name if owner is None else owner
                return [RR(rname, r.rtype, r.rclass, r.ttl, r.rdata) for r in wild]
        return []

    def lookup(self, name: str, qtype: int, owner: DNSLabel | None = None) -> tuple[int, list[RR]]:
        answers: list[RR] = []
        seen = {name}
        for _ in range(MAX_CHAIN):
            rrs = self.records_for(name, owner)
            if not rrs:
                return (RCODE.NOERROR if self.exists(name) else RCODE.NXDOMAIN), answers
            if qtype == QTYPE.ANY:
                return RCODE.NOERROR, answers + rrs
            same = [r for r in rrs if r.rtype == qtype]
            if same:
                return RCODE.NOERROR, answers + same
            cnames = [r for r in rrs if r.rtype == QTYPE.CNAME]
            if not cnames:
                return RCODE.NOERROR, answers
            answers.append(cnames[0])
            owner = cnames[0].rdata.label
            name = _norm(owner)
            if name in seen:
                break
            seen.add(name)
        return RCODE.NOERROR, answers


class FakeDns:
    """The fake DNS of one scenario. ``clock`` gives the current (virtual) time."""

    def __init__(
        self,
        spec: DnsSpec,
        clock: Callable[[], float],
        start: float = 0.0,
        wait: Callable[[float], None] | None = None,
    ) -> None:
        self.spec = spec
        #: how a resolver's wait for an answer that never comes passes (the
        #: simulator moves its clock, so a DNS timeout takes its time there too)
        self.wait = wait
        self.zone = Zone(spec.zone)
        self.clock = clock
        self.start = start
        self.queries: list[DnsQuery] = []
        self._hits = [0] * len(spec.rules)
        #: A real server answers on whatever address it listens on (serve()).
        self.answer_everywhere = False

    # -- the DnsTransport seam --------------------------------------------------
    def exchange(
        self, server: tuple[str, int], query: bytes, *, tcp: bool, timeout: float
    ) -> bytes:
        answer = self.respond(query, tcp=tcp, server=server[0])
        if answer is None:
            if self.wait is not None:
                self.wait(timeout)
            raise DnsTimeout(f"no answer from {server[0]}")
        return answer

    # -- the core -------------------------------------------------------------------
    def respond(self, query: bytes, *, tcp: bool, server: str) -> bytes | None:
        """The answer to one packet: bytes, or None for no answer at all.

        Garbage is treated as BIND treats it: a packet too short for a header,
        or with the QR bit (an answer, not a question), gets nothing; a query
        that cannot be read gets FORMERR with its id (:func:`formerr`).
        """
        if len(query) < HEADER or query[2] & 0x80:
            return None
        request = _read_query(query)
        if request is None:
            return formerr(query) if self._answers_at(server) else None
        question = request.q
        qname, qtype = _norm(question.qname), int(question.qtype)
        elapsed = self.clock() - self.start
        self.queries.append(
            DnsQuery(
                name=qname,
                type=QTYPE.get(qtype, str(qtype)),
                transport="tcp" if tcp else "udp",
                server=server,
                time=elapsed,
            )
        )
        if not self._answers_at(server):
            return None  # nobody answers at that address
        rule = self._rule(qname, qtype, server, elapsed)
        if rule is not None and rule.timeout:
            return None
        reply = self._reply(request, qname, qtype, rule)
        wire = bytes(reply.pack())
        limit = TCP_LIMIT if tcp else _udp_limit(request)
        if len(wire) > limit or (not tcp and rule is not None and rule.tc):
            wire = bytes(DNSRecord(reply.header, q=reply.q).pack())
            wire = wire[:2] + bytes([wire[2] | 0x02]) + wire[3:]  # the TC bit
        if rule is not None and rule.malformed:
            wire = malform(wire, rule.malformed)
        return wire

    def _answers_at(self, server: str) -> bool:
        return self.answer_everywhere or server in self.spec.servers

    def _rule(self, qname: str, qtype: int, server: str, elapsed: float) -> DnsRule | None:
        for i, rule in enumerate(self.spec.rules):
            if rule.name != qname or not _type_matches(rule.type, qtype):
                continue
            if rule.server is not None and rule.server != server:
                continue
            if rule.after is not None and elapsed < rule.after:
                continue
            if rule.until is not None and elapsed >= rule.until:
                continue
            if rule.times is not None and self._hits[i] >= rule.times:
                continue
            self._hits[i] += 1
            return rule
        return None

    def _reply(self, request: DNSRecord, qname: str, qtype: int, rule: DnsRule | None) -> Any:
        reply = request.reply(ra=1, aa=1)
        if rule is not None and rule.answer is not None:
            for line in rule.answer:
                for rr in RR.fromZone(line):
                    reply.add_answer(rr)
        elif rule is not None and rule.minimal_any and qtype == QTYPE.ANY:
            # RFC 8482 section 4.2: one synthesised HINFO with CPU "RFC8482" and empty OS.
            owner = request.q.qname
            reply.add_answer(RR(owner, QTYPE.HINFO, rdata=RD(b"\x07RFC8482\x00"), ttl=3600))
        elif rule is None or rule.rcode is None:
            rcode, answers = self.zone.lookup(qname, qtype, request.q.qname)
            reply.header.rcode = rcode
            for rr in answers:
                reply.add_answer(rr)
        if rule is not None and rule.rcode is not None:
            reply.header.rcode = getattr(RCODE, rule.rcode)
        if rule is not None and rule.pad_to is not None:
            _pad(reply, request.q.qname, rule.pad_to)
        return reply


def _type_matches(rule_type: str, qtype: int) -> bool:
    return rule_type == "*" or rule_type == QTYPE.get(qtype, str(qtype))


def _read_query(query: bytes) -> DNSRecord | None:
    """The query in ``query``, or None if it is not one a server can answer."""
    try:
        request = DNSRecord.parse(query)
    except Exception:  # dnslib raises several kinds for garbage
        return None
    # RFC 9619: a QUERY with more than one question is malformed (FORMERR);
    # with none there is nothing to answer, and BIND says FORMERR too.
    if len(request.questions) != 1 or _wire_length(request.q.qname) > MAX_NAME:
        return None
    return request


def _wire_length(name: DNSLabel) -> int:
    return sum(1 + len(label) for label in name.label) + 1  # + the root label


def formerr(query: bytes) -> bytes:
    """A header-only FORMERR answer to ``query`` (at least a header long).

    It echoes the id, the opcode and RD, as BIND's answer to a query it
    cannot parse does; RA is set as in every other answer of the fake.
    """
    flags = 0x80 | (query[2] & 0x79)  # QR, and the query's opcode and RD
    return query[:2] + bytes([flags, 0x80 | RCODE.FORMERR]) + bytes(8)


def _udp_limit(request: DNSRecord) -> int:
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(UDP_LIMIT, int(rr.rclass))  # EDNS0: CLASS holds the payload size
    return UDP_LIMIT


def _pad(reply: Any, qname: DNSLabel, size: int) -> None:
    """Grow the answer past ``size`` bytes with TXT records of the queried name."""
    length = len(reply.pack())  # packed once: each record's size is known
    n = 0
    while length <= size:
        text = f"padding {n:03d} " + "x" * 100
        reply.add_answer(RR(qname, QTYPE.TXT, rdata=TXT(text), ttl=300))
        # the owner is the question's name: a 2-byte pointer; then TYPE, CLASS,
        # TTL, RDLENGTH (10 bytes) and the one character-string
        length += 2 + 10 + 1 + len(text)
        n += 1


def malform(wire: bytes, how: str) -> bytes:
    """Break a response the way a buggy server or a bad network would."""
    if how == "truncated":
        return wire[: max(12, len(wire) // 2)]
    if how == "wrong_id":
        (ident,) = struct.unpack("!H", wire[:2])
        return struct.pack("!H", (ident + 1) & 0xFFFF) + wire[2:]
    if how == "other_question":
        record = DNSRecord.parse(wire)
        other = DNSLabel((b"other", *record.q.qname.label))
        if _wire_length(other) > MAX_NAME:
            other = DNSLabel("other.invalid.")
        record.q.qname = other
        return bytes(record.pack())
    # pointer_loop: one answer record whose owner name is a compression pointer to itself.
    header = bytearray(wire[:12])
    end = _question_end(wire)
    header[7] = 1  # ANCOUNT = 1
    header[9] = header[11] = 0  # no authority or additional records
    offset = end
    record = struct.pack("!HHHIH", 0xC000 | offset, 1, 1, 300, 4) + bytes(4)
    return bytes(header) + wire[12:end] + record


def _question_end(wire: bytes) -> int:
    pos = 12
    while pos < len(wire) and wire[pos] != 0:
        pos += 1 + wire[pos]
    return pos + 5  # the root label, QTYPE, QCLASS


# -- a real server on loopback ------------------------------------------------------


class UdpServer(asyncio.DatagramProtocol):
    """The UDP side of :func:`serve`: one answer (or none) per datagram."""

    def __init__(self, dns: FakeDns, server: str) -> None:
        self.dns = dns
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = self.dns.respond(data, tcp=False, server=self.server)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


class TcpClient:
    """The TCP side of :func:`serve`: length-prefixed queries (RFC 1035 4.2.2) until EOF."""

    def __init__(self, dns: FakeDns, server: str) -> None:
        self.dns = dns
        self.server = server

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                query = await reader.readexactly(size)
                answer = self.dns.respond(query, tcp=True, server=self.server)
                if answer is None:
                    continue
                writer.write(struct.pack("!H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve(
    dns: FakeDns, host: str, port: int, *, answer_everywhere: bool = True
) -> tuple[asyncio.DatagramTransport, asyncio.Server, int]:
    """Serve ``dns`` over UDP and TCP on ``host:port`` (0: pick one); return the port.

    ``answer_everywhere`` (``qmail-sim dns``) answers whatever address the
    query came to; the live target turns it off, so that a query to an
    address the scenario does not list in ``dns.servers`` is recorded and
    left unanswered, as a dead resolver would leave it.

    An OSError if either cannot bind (a port in use), with neither left open.
    """
    loop = asyncio.get_running_loop()
    if answer_everywhere:
        dns.answer_everywhere = True
    for attempt in range(1, PORT_TRIES + 1):
        tcp = await asyncio.start_server(TcpClient(dns, host), host, port)
        chosen: int = tcp.sockets[0].getsockname()[1]
        try:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: UdpServer(dns, host), local_addr=(host, chosen)
            )
        except OSError as exc:
            tcp.close()  # all or nothing
            await tcp.wait_closed()
            # Port 0 picked a TCP port whose UDP twin is taken: pick again.
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt == PORT_TRIES:
                raise
            continue
        return udp, tcp, chosen
    raise AssertionError("unreachable: the last attempt returns or raises")


__all__ = [
    "CNAME",
    "DnsQuery",
    "FakeDns",
    "TcpClient",
    "UdpServer",
    "Zone",
    "ZoneError",
    "formerr",
    "malform",
    "parse_zone",
    "serve",
]
