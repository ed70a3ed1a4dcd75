"""DNS wire format the way libc's resolver (and so qmail's dns.c) reads it.

dnslib builds and parses messages for the test servers and the harness.
Our queries are built here (res_mkquery's shape: RD set, one question, no
EDNS) and answers are read here too, byte by byte, because qmail's behaviour depends on exactly
where libc's ``dn_expand`` gives up: a name that runs past the end of the
(possibly cut) buffer, a compression pointer that points outside it or loops,
a label type other than 0 or 0xC0, a name longer than 255 bytes on the wire.
Each of those is an error (-1 in C), which dns.c turns into DNS_SOFT.

Names come out in ``ns_name_ntop``'s presentation form: labels joined by
``.``, the special characters ``" . ; \\ ( ) @ $`` escaped with a backslash,
other bytes outside 0x21..0x7E as ``\\DDD``, the root as ``.``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HFIXEDSZ = 12  # arpa/nameser.h: the fixed header
QFIXEDSZ = 4  # type + class after a question's name
RRFIXEDSZ = 10  # type, class, ttl, rdlength after a record's name
MAXCDNAME = 255  # the longest name on the wire (RFC 1035 3.1)
MAXDNAME = 1025  # dn_expand's output buffer in dns.c, NUL included

T_A = 1
T_CNAME = 5
T_PTR = 12
T_MX = 15
T_ANY = 255
C_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

_SPECIAL = frozenset(b'".;\\()@$')


class WireError(Exception):
    """A name or message libc would refuse (dn_expand or dn_comp returning -1)."""


@dataclass(frozen=True, kw_only=True)
class Header:
    """The fields of a DNS header that the resolver looks at."""

    id: int
    tc: bool
    rcode: int
    qdcount: int
    ancount: int

    @classmethod
    def from_wire(cls, msg: bytes) -> Header:
        if len(msg) < HFIXEDSZ:
            raise WireError(f"header needs {HFIXEDSZ} bytes, got {len(msg)}")
        ident, flags, qd, an = struct.unpack("!HHHH", msg[:8])
        return cls(id=ident, tc=bool(flags & 0x0200), rcode=flags & 0x000F, qdcount=qd, ancount=an)


def getbyte(msg: bytes, pos: int) -> int:
    """One byte; past the end of what libc copied it reads as 0 (see qmaildns.py)."""
    return msg[pos] if 0 <= pos < len(msg) else 0


def getshort(msg: bytes, pos: int) -> int:
    """dns.c's getshort."""
    return (getbyte(msg, pos) << 8) | getbyte(msg, pos + 1)


def ntop(labels: list[bytes]) -> str:
    """ns_name_ntop: presentation form, as dns.c copies it into ``name``."""
    if not labels:
        return "."
    out: list[str] = []
    for label in labels:
        part = []
        for b in label:
            if b in _SPECIAL:
                part.append("\\" + chr(b))
            elif 0x20 < b < 0x7F:
                part.append(chr(b))
            else:
                part.append(f"\\{b:03d}")
        out.append("".join(part))
    text = ".".join(out)
    if len(text) + 1 > MAXDNAME:
        raise WireError("name too long for dn_expand's buffer")
    return text


def dn_expand(msg: bytes, pos: int, end: int) -> tuple[str, int]:
    """dn_expand: (name, bytes used at ``pos``) or :class:`WireError`."""
    labels, used = unpack_name(msg, pos, end)
    return ntop(labels), used


def unpack_name(msg: bytes, pos: int, end: int) -> tuple[list[bytes], int]:
    """ns_name_unpack: the labels at ``pos`` and how many bytes the name takes there.

    ``end`` is the end of the buffer as libc was told it (dns.c's
    ``responseend``). Raises :class:`WireError` wherever libc returns -1.
    """
    start = pos
    eom = min(end, len(msg))
    if pos < 0 or pos >= eom:
        raise WireError("name starts outside the message")
    labels: list[bytes] = []
    wire_len = 0
    used = -1
    checked = 0
    while True:
        if pos >= eom:
            raise WireError("name runs past the end")
        n = msg[pos]
        pos += 1
        kind = n & 0xC0
        if kind == 0:
            if n == 0:
                break
            if wire_len + n + 1 >= MAXCDNAME or pos + n >= eom:
                raise WireError("label runs past the end or the name is too long")
            labels.append(msg[pos : pos + n])
            wire_len += n + 1
            pos += n
            checked += n + 1
        elif kind == 0xC0:
            if pos >= eom:
                raise WireError("compression pointer cut off")
            if used < 0:
                used = pos + 1 - start
            pos = ((n & 0x3F) << 8) | msg[pos]
            if pos >= eom:
                raise WireError("compression pointer outside the message")
            checked += 2
            # libc's loop detection: more bytes examined than the message holds.
            if checked >= eom:
                raise WireError("compression pointer loop")
        else:
            raise WireError(f"unknown label type 0x{kind:02x}")
    if used < 0:
        used = pos - start
    return labels, used


def pton(name: str) -> list[bytes]:
    """ns_name_pton: text to labels; ``\\X`` and ``\\DDD`` escapes; a final dot is optional.

    Raises :class:`WireError` where res_mkquery fails (empty label, label over
    63 bytes, name over 255 bytes) — res_query then sets NO_RECOVERY.
    """
    raw = name.encode("utf-8", "surrogateescape")  # as qmail-remote passes the bytes
    labels: list[bytes] = []
    cur = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x5C:  # backslash
            i, byte = _escape(raw, i + 1)
            cur.append(byte)
            continue
        if c == 0x2E:  # dot
            if not cur:
                if i == 0 and len(raw) == 1:
                    return []  # "." is the root
                raise WireError("empty label")
            labels.append(bytes(cur))
            cur = bytearray()
        else:
            cur.append(c)
        i += 1
    if cur:
        labels.append(bytes(cur))
    if any(len(label) > 63 for label in labels):
        raise WireError("label longer than 63 bytes")
    if sum(len(label) + 1 for label in labels) + 1 > MAXCDNAME:
        raise WireError("name longer than 255 bytes")
    return labels


def _escape(raw: bytes, i: int) -> tuple[int, int]:
    if i >= len(raw):
        raise WireError("backslash at the end of a name")
    digits = raw[i : i + 3]
    if len(digits) == 3 and digits.isdigit():
        value = int(digits)
        if value > 255:
            raise WireError("\\DDD escape above 255")
        return i + 3, value
    return i + 1, raw[i]


T_OPT = 41
EDNS_BUFFER_MAX = 1200  # glibc's RESOLV_EDNS_BUFFER_SIZE


def make_query(
    name: str, qtype: int, ident: int, *, edns: int | None = None, ad: bool = False
) -> bytes:
    """res_mkquery: a standard query, RD set, one question.

    ``edns`` (resolv.conf ``options edns0``) appends __res_nopt's OPT record
    advertising the answer buffer's size, at least 512 and at most 1200;
    ``ad`` (``options trust-ad``) sets the AD bit. glibc sends neither by default.
    """
    labels = pton(name)
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    flags = 0x0100 | (0x0020 if ad else 0)  # RD, AD
    header = struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0 if edns is None else 1)
    query = header + qname + struct.pack("!HH", qtype, C_IN)
    if edns is not None:
        size = min(max(edns, 512), EDNS_BUFFER_MAX)
        query += b"\0" + struct.pack("!HHIH", T_OPT, size, 0, 0)
    return query


def same_question(query: bytes, answer: bytes) -> bool:
    """res_queriesmatch as glibc's send_dg uses it to drop stray datagrams.

    The question counts must be equal and our question must appear among the
    answer's, names compared without case. A question section libc cannot
    parse counts as a match (res_nameinquery's -1 is true in C); dns.c then
    trips over it itself.
    """
    try:
        q = Header.from_wire(query)
        a = Header.from_wire(answer)
    except WireError:
        return True
    if q.qdcount != a.qdcount:
        return False
    qlabels, used = unpack_name(query, HFIXEDSZ, len(query))
    qtype, qclass = struct.unpack("!HH", query[HFIXEDSZ + used : HFIXEDSZ + used + 4])
    want = [label.lower() for label in qlabels]
    pos = HFIXEDSZ
    for _ in range(a.qdcount):
        try:
            labels, used = unpack_name(answer, pos, len(answer))
        except WireError:
            return True
        pos += used
        if pos + 4 > len(answer):
            return True
        atype, aclass = struct.unpack("!HH", answer[pos : pos + 4])
        pos += 4
        if atype == qtype and aclass == qclass and [x.lower() for x in labels] == want:
            return True
    return False


__all__ = [
    "C_IN",
    "HFIXEDSZ",
    "QFIXEDSZ",
    "T_A",
    "T_ANY",
    "T_CNAME",
    "T_MX",
    "Header",
    "WireError",
    "dn_expand",
    "getshort",
    "make_query",
    "ntop",
    "pton",
    "same_question",
    "unpack_name",
]
