"""qmail's dns.c: CNAME canonicalisation, MX and A lookups, soft versus hard.

Pure policy over :class:`~server.dns.resolver.LibcResolver`. Every result
maps the way dns.c maps it:

* ``res_query`` fails: DNS_SOFT when errno is ECONNREFUSED or h_errno is
  TRY_AGAIN (no answer, SERVFAIL), DNS_HARD otherwise (NXDOMAIN, no data,
  FORMERR, REFUSED over TCP, a name res_mkquery cannot encode).
* The answer is walked record by record with dn_expand; any name it cannot
  expand, a record header cut short, or running into the end of the buffer
  while answers remain is DNS_SOFT.

**The 512-byte question.** Unpatched dns.c hands res_query a buffer of
PACKETSZ = 512 bytes. glibc gets a UDP answer with TC set and asks again over
TCP (RES_IGNTC is off); ``send_vc`` copies only 512 bytes of the longer TCP
answer and returns its full length (res_send.c, "response truncated"; read
in lattera/glibc through the search tool). dns.c then clamps ``responselen``
to ``sizeof(response)`` and parses those 512 bytes while ``ancount`` still
counts every record, so the walk reaches the cut with answers left: dn_expand
fails or fewer than 10 bytes remain, and ``findname`` returns DNS_SOFT. For
the ANY query of dns_cname that is qmail-remote's
``CNAME lookup failed temporarily. (#4.4.3)``, every time, until the answer
shrinks. (A cut that falls inside the last record's data goes unnoticed:
dns.c only skips ``rrdlen`` and never looks again.) With qmail-103.patch the
buffer starts at 513 bytes; an answer that fills it or has TC set is asked
again with RES_USEVC into a 65536-byte buffer and read whole.

Bytes that dns.c reads past the end of what res_query copied (``findip`` and
``findmx`` read rdata without checking the end) read as zero here; in C they
are whatever the static buffer held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.dns.resolver import TRY_AGAIN, LibcResolver, ResolveError
from server.dns.wire import (
    HFIXEDSZ,
    QFIXEDSZ,
    RRFIXEDSZ,
    T_A,
    T_ANY,
    T_CNAME,
    T_MX,
    T_PTR,
    Header,
    WireError,
    dn_expand,
    getbyte,
    getshort,
)
from server.scan import scan_ulong

PACKETSZ = 512  # arpa/nameser.h; dns.c's buffer before qmail-103.patch
PATCHED_FIRST = PACKETSZ + 1  # qmail-103.patch: first try
PATCHED_MAX = 65536  # qmail-103.patch: the retry over TCP
CNAME_LOOP_LIMIT = 10  # dns_cname: "for (loop = 0;loop < 10;++loop)"
_ECONNREFUSED = 111
_ULONG = 1 << 64  # unsigned long on the LP64 machines qmail runs on


class DnsSoft(Exception):
    """DNS_SOFT: try again later."""

    def __init__(self, name: str, qtype: int, reason: str) -> None:
        super().__init__(f"{name}/{qtype}: {reason}")
        self.name, self.qtype, self.reason = name, qtype, reason


class DnsHard(Exception):
    """DNS_HARD: the name does not exist or has no such data."""

    def __init__(self, name: str, qtype: int, reason: str) -> None:
        super().__init__(f"{name}/{qtype}: {reason}")
        self.name, self.qtype, self.reason = name, qtype, reason


@dataclass(frozen=True, order=True)
class IpMx:
    """ipalloc's ``struct ip_mx``: an address and the preference it came with."""

    ip: str
    pref: int


@dataclass
class _Walk:
    """dns.c's static parse state over one response."""

    name: str
    qtype: int
    buf: bytes
    end: int
    pos: int
    left: int

    def soft(self, reason: str) -> DnsSoft:
        return DnsSoft(self.name, self.qtype, reason)

    def record(self) -> tuple[int, int] | None:
        """The common head of findname/findip/findmx: (type, rdlength), or None at the end."""
        if self.left <= 0:
            return None
        self.left -= 1
        if self.pos == self.end:
            raise self.soft("answers run past the end of the response")
        try:
            _, used = dn_expand(self.buf, self.pos, self.end)
        except WireError as exc:
            raise self.soft(f"owner name: {exc}") from None
        self.pos += used
        if self.end - self.pos < RRFIXEDSZ:
            raise self.soft("record header cut off")
        rrtype, rdlen = getshort(self.buf, self.pos), getshort(self.buf, self.pos + 8)
        self.pos += RRFIXEDSZ
        return rrtype, rdlen

    def expand_at(self, pos: int) -> str:
        try:
            return dn_expand(self.buf, pos, self.end)[0]
        except WireError as exc:
            raise self.soft(f"rdata name: {exc}") from None


def ip_scan(text: str) -> tuple[str, int] | None:
    """ip.c's ip_scan: dotted quad at the start, each part taken modulo 256."""
    parts: list[int] = []
    pos = 0
    for i in range(4):
        value, digits = scan_ulong(text[pos:])
        if not digits:
            return None
        parts.append(value % 256)
        pos += digits
        if i < 3:
            if text[pos : pos + 1] != ".":
                return None
            pos += 1
    return ".".join(map(str, parts)), pos


def ip_literal(host: str) -> str | None:
    """dns_ipplus/dns_mxip: ``1.2.3.4`` or ``[1.2.3.4]`` taking the whole string."""
    if not host:
        return None
    plain = ip_scan(host)
    if plain and plain[1] == len(host):
        return plain[0]
    if host.startswith("["):
        inner = ip_scan(host[1:])
        if inner and host[1 + inner[1] :] == "]":
            return inner[0]
    return None


@dataclass
class QmailDns:
    """dns.c over a resolver; ``patched`` is qmail-103.patch."""

    resolver: LibcResolver
    patched: bool = False
    queries: list[tuple[str, int]] = field(default_factory=list)

    def _lookup(self, name: str, qtype: int) -> tuple[int, bytes]:
        name = name.split("\0", 1)[0]  # res_query sees a C string
        self.queries.append((name, qtype))
        if not self.patched:
            answer = self.resolver.res_query(name, qtype, PACKETSZ)
            return min(answer.length, PACKETSZ), answer.data
        answer = self.resolver.res_query(name, qtype, PATCHED_FIRST)
        if answer.length >= PATCHED_FIRST or Header.from_wire(answer.data).tc:
            answer = self.resolver.res_query(name, qtype, PATCHED_MAX, usevc=True)
        return answer.length, answer.data

    def resolve(self, name: str, qtype: int) -> _Walk:
        """dns.c's resolve(): query, then step over the question section."""
        try:
            length, buf = self._lookup(name, qtype)
        except ResolveError as exc:
            if exc.errno == _ECONNREFUSED or exc.h_errno == TRY_AGAIN:
                raise DnsSoft(name, qtype, f"h_errno {exc.h_errno}") from None
            raise DnsHard(name, qtype, f"h_errno {exc.h_errno}") from None
        end = min(length, len(buf))
        walk = _Walk(name, qtype, buf, end, HFIXEDSZ, 0)
        header = Header.from_wire(buf)
        for _ in range(header.qdcount):
            try:
                _, used = dn_expand(buf, walk.pos, end)
            except WireError as exc:
                raise walk.soft(f"question: {exc}") from None
            walk.pos += used
            if end - walk.pos < QFIXEDSZ:
                raise walk.soft("question cut off")
            walk.pos += QFIXEDSZ
        walk.left = header.ancount
        return walk

    def findname(self, walk: _Walk, want: int) -> str | bool | None:
        """One answer: its target name if of type ``want``, False if not, None at the end."""
        head = walk.record()
        if head is None:
            return None
        rrtype, rdlen = head
        if rrtype == want:
            target = walk.expand_at(walk.pos)
            walk.pos += rdlen
            return target
        walk.pos += rdlen
        return False

    def dns_cname(self, name: str) -> tuple[str, int | None]:
        """(canonical name, loops) — loops None is dns.c's DNS_HARD "alias loop"."""
        for loop in range(CNAME_LOOP_LIMIT):
            if not name or name.endswith("]"):
                return name, loop
            if name.endswith("."):
                name = name[:-1]
                continue
            try:
                walk = self.resolve(name, T_ANY)
            except DnsHard:
                return name, loop
            while True:
                found = self.findname(walk, T_CNAME)
                if found is None:
                    return name, loop
                if isinstance(found, str):
                    name = found
                    break
        return name, None

    def dns_ptr(self, ip: str) -> str:
        """dns_ptr: the first PTR name for a dotted quad; DnsHard when there is none."""
        name = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
        walk = self.resolve(name, T_PTR)
        while True:
            found = self.findname(walk, T_PTR)
            if found is None:
                raise DnsHard(name, T_PTR, "no PTR record")
            if isinstance(found, str):
                return found

    def _ipplus(self, host: str, pref: int, found: list[IpMx]) -> None:
        """dns_ipplus: append ``host``'s addresses to ``found`` as each is read.

        A soft error part-way (an answer cut at 512 bytes) leaves the records
        already read in ``found``, as ipalloc_append leaves them in dns.c's
        ``ia``; dns_mxip goes on to the next MX and qmail-remote tries them.
        """
        literal = ip_literal(host)
        if literal is not None:
            found.append(IpMx(literal, 0))
            return
        walk = self.resolve(host, T_A)
        while (head := walk.record()) is not None:
            rrtype, rdlen = head
            if rrtype == T_A:
                if rdlen < 4:
                    raise walk.soft("A record shorter than 4 bytes")
                quad = [getbyte(walk.buf, i) for i in range(walk.pos, walk.pos + 4)]
                found.append(IpMx(".".join(map(str, quad)), pref))
            walk.pos += rdlen

    def dns_ip(self, host: str) -> list[IpMx]:
        found: list[IpMx] = []
        self._ipplus(host, 0, found)
        return found

    def _mx_records(self, walk: _Walk) -> list[tuple[str, int]]:
        mxs: list[tuple[str, int]] = []
        while (head := walk.record()) is not None:
            rrtype, rdlen = head
            if rrtype == T_MX:
                if rdlen < 3:
                    raise walk.soft("MX record shorter than 3 bytes")
                pref = getshort(walk.buf, walk.pos)
                mxs.append((walk.expand_at(walk.pos + 2), pref))
            walk.pos += rdlen
        return mxs

    def dns_mxip(self, host: str, random: int) -> tuple[list[IpMx], bool]:
        """(addresses in the order qmail tries them, whether some MX host was soft)."""
        literal = ip_literal(host)
        if literal is not None:
            return [IpMx(literal, 0)], False
        try:
            walk = self.resolve(host, T_MX)
        except DnsHard:
            return self.dns_ip(host), False
        mxs = self._mx_records(walk)
        if not mxs:
            return self.dns_ip(host), False  # "e.g., CNAME -> A"
        found: list[IpMx] = []
        soft = False
        while mxs:
            i, random = pick_mx(mxs, random)
            mxname, pref = mxs[i]
            try:
                self._ipplus(mxname, pref, found)
            except DnsSoft:
                soft = True
            except DnsHard:
                pass
            mxs[i] = mxs[-1]
            mxs.pop()
        return found, soft


def pick_mx(mxs: list[tuple[str, int]], random: int) -> tuple[int, int]:
    """dns_mxip's choice of the next MX: lowest preference, random among equals.

    The same linear congruential steps as dns.c (``random * 69069 + 1`` in an
    unsigned long), so a given seed orders equal MXes as qmail would.
    """
    i = 0
    numsame = 1
    for j in range(1, len(mxs)):
        if mxs[j][1] < mxs[i][1]:
            i, numsame = j, 1
        elif mxs[j][1] == mxs[i][1]:
            numsame += 1
            random = (random * 69069 + 1) % _ULONG
            if random // 2 < 2147483647 // numsame:
                i = j
    return i, random


__all__ = ["T_A", "T_ANY", "T_MX", "DnsHard", "DnsSoft", "IpMx", "QmailDns", "ip_literal"]
