"""glibc's stub resolver, as qmail reaches it through ``res_query``.

This is the policy half (STYLE.md, from dnspython): which server to ask, when
to switch to TCP, which answers to drop, and what ``h_errno`` results. The
sending is done by an injected :class:`server.net.DnsTransport`, so the same
object talks to real servers, to the harness's fake DNS in-process, or to a
dnslib server on loopback.

What glibc does (resolv/res_send.c and resolv/res_query.c, read through the
search tool in lattera/glibc; the structure has stayed the same in later
releases):

* ``__libc_res_nsend`` tries ``attempts`` rounds (RES_DFLRETRY = 2); in each
  round every name server in turn (at most MAXNS = 3 are read from
  resolv.conf). Over UDP the wait for server ``ns`` is ``retrans << ns``
  seconds, divided by the server count when ``ns > 0``, at least 1
  (RES_TIMEOUT = 5 s).
* ``send_dg`` drops datagrams shorter than a header, with another id, or
  whose question is not ours (res_queriesmatch) and keeps waiting — we count
  those as the wait running out. SERVFAIL, NOTIMP and REFUSED send it on to
  the next server. A TC answer (RES_IGNTC is off by default) makes it ask the
  same server again over TCP, and from then on only TCP is used, one try per
  server. ``recvfrom`` into the caller's buffer cuts a longer datagram.
* ``send_vc`` reads the two-byte length; when the answer is longer than the
  caller's buffer (``anssiz``) and the buffer cannot be reallocated (plain
  ``res_query`` passes no ``ansp``), it copies ``anssiz`` bytes, sets TC in
  the copy, throws the rest away and **returns the full length**.
* Nothing answered: -1 with errno ECONNREFUSED when no server was reached
  at all, ETIMEDOUT otherwise; ``res_nquery`` then sets h_errno TRY_AGAIN.
* An answer with rcode other than NOERROR or no answer records: -1 with
  h_errno HOST_NOT_FOUND (NXDOMAIN), TRY_AGAIN (SERVFAIL, possible over TCP),
  NO_DATA (NOERROR, no records), NO_RECOVERY (FORMERR, NOTIMP, REFUSED,
  anything else). ``res_mkquery`` failing (a bad name) is NO_RECOVERY too.

glibc has no timeout of its own over TCP (a blocking read); we give each TCP
exchange the same time as the UDP wait for that server so that a silent
server cannot hang a delivery.
"""

from __future__ import annotations

import errno as errnos
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.dns.wire import (
    HFIXEDSZ,
    RCODE_NOERROR,
    RCODE_NOTIMP,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    Header,
    WireError,
    make_query,
    same_question,
)
from server.net import DnsTimeout, DnsTransport

# netdb.h
HOST_NOT_FOUND = 1
TRY_AGAIN = 2
NO_RECOVERY = 3
NO_DATA = 4

RES_TIMEOUT = 5  # resolv.h: seconds before the first retransmission
RES_DFLRETRY = 2  # resolv.h: rounds over the server list
RES_MAXRETRANS = 30
RES_MAXRETRY = 5
MAXNS = 3
NAMESERVER_PORT = 53

_RCODE_HERRNO = {
    RCODE_NXDOMAIN: HOST_NOT_FOUND,
    RCODE_SERVFAIL: TRY_AGAIN,
    RCODE_NOERROR: NO_DATA,
}


@dataclass(frozen=True, kw_only=True)
class ResolverConfig:
    """What res_init reads from resolv.conf (see :mod:`server.dns.resolvconf`)."""

    nameservers: tuple[tuple[str, int], ...] = (("127.0.0.1", NAMESERVER_PORT),)
    timeout: int = RES_TIMEOUT
    attempts: int = RES_DFLRETRY
    edns0: bool = False  # options edns0: an OPT record advertising the buffer size
    trust_ad: bool = False  # options trust-ad: the AD bit in queries

    def __post_init__(self) -> None:
        if not self.nameservers:
            raise ValueError("a resolver needs at least one name server")


class ResolveError(Exception):
    """res_query returned -1; carries h_errno and errno as libc leaves them."""

    def __init__(self, name: str, qtype: int, h_errno: int, errno: int = 0) -> None:
        super().__init__(f"{name}/{qtype}: h_errno {h_errno}, errno {errno}")
        self.name = name
        self.qtype = qtype
        self.h_errno = h_errno
        self.errno = errno


@dataclass(frozen=True)
class Answer:
    """res_query's success: the length it returned and the bytes in the buffer.

    ``length`` may exceed ``len(data)``: a TCP answer longer than the buffer.
    """

    length: int
    data: bytes


class _SendFailed(Exception):
    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


_NEXT = "next"
_TCP = "tcp"


class LibcResolver:
    """``res_query`` over an injected transport."""

    def __init__(
        self,
        config: ResolverConfig,
        transport: DnsTransport,
        next_id: Callable[[], int],
    ) -> None:
        self.config = config
        self.transport = transport
        self.next_id = next_id

    def res_query(self, name: str, qtype: int, anssiz: int, *, usevc: bool = False) -> Answer:
        try:
            query = make_query(
                name,
                qtype,
                self.next_id() & 0xFFFF,
                edns=anssiz if self.config.edns0 else None,
                ad=self.config.trust_ad,
            )
        except WireError:
            raise ResolveError(name, qtype, NO_RECOVERY) from None
        try:
            length, data = self._send(query, anssiz, usevc)
        except _SendFailed as exc:
            raise ResolveError(name, qtype, TRY_AGAIN, exc.errno) from None
        header = Header.from_wire(data)
        if header.rcode != RCODE_NOERROR or header.ancount == 0:
            raise ResolveError(name, qtype, _RCODE_HERRNO.get(header.rcode, NO_RECOVERY))
        return Answer(length, data)

    def _udp_wait(self, ns: int) -> int:
        seconds = self.config.timeout << ns
        if ns > 0:
            seconds //= len(self._servers())
        return max(seconds, 1)

    def _servers(self) -> Sequence[tuple[str, int]]:
        return self.config.nameservers[:MAXNS]

    def _send(self, query: bytes, anssiz: int, usevc: bool) -> tuple[int, bytes]:
        v_circuit = usevc
        state = {"gotsomewhere": False, "terrno": errnos.ETIMEDOUT}
        attempt = 0
        while attempt < self.config.attempts:
            for ns, server in enumerate(self._servers()):
                while True:  # "same_ns" in res_send.c
                    if v_circuit:
                        attempt = self.config.attempts  # TCP: one try per server
                        got = self._send_vc(server, query, anssiz, self._udp_wait(ns), state)
                        if got is None:
                            break
                        return got
                    result = self._send_dg(server, query, anssiz, self._udp_wait(ns), state)
                    if result == _TCP:
                        v_circuit = True
                        continue
                    if isinstance(result, tuple):
                        return result
                    break
            attempt += 1
        if not v_circuit:
            raise _SendFailed(errnos.ETIMEDOUT if state["gotsomewhere"] else errnos.ECONNREFUSED)
        raise _SendFailed(int(state["terrno"]))

    def _send_dg(
        self,
        server: tuple[str, int],
        query: bytes,
        anssiz: int,
        wait: int,
        state: dict[str, bool | int],
    ) -> tuple[int, bytes] | str:
        try:
            datagram = self.transport.exchange(server, query, tcp=False, timeout=float(wait))
        except DnsTimeout:
            state["gotsomewhere"] = True
            return _NEXT
        except OSError:
            return _NEXT  # ECONNREFUSED and friends: next server, nothing reached
        data = datagram[:anssiz]  # recvfrom into a buffer of anssiz bytes
        state["gotsomewhere"] = True
        if len(data) < HFIXEDSZ:
            state["terrno"] = errnos.EMSGSIZE
            return _NEXT
        if data[:2] != query[:2] or not same_question(query, data):
            return _NEXT  # ignored; the real wait then runs out
        header = Header.from_wire(data)
        if header.rcode in (RCODE_SERVFAIL, RCODE_NOTIMP, RCODE_REFUSED):
            return _NEXT
        if header.tc:
            return _TCP
        return len(data), data

    def _send_vc(
        self,
        server: tuple[str, int],
        query: bytes,
        anssiz: int,
        wait: int,
        state: dict[str, bool | int],
    ) -> tuple[int, bytes] | None:
        try:
            message = self.transport.exchange(server, query, tcp=True, timeout=float(wait))
        except DnsTimeout:
            state["terrno"] = errnos.ETIMEDOUT
            return None
        except OSError as exc:
            state["terrno"] = exc.errno or errnos.ECONNREFUSED
            return None
        if len(message) < HFIXEDSZ:
            state["terrno"] = errnos.EMSGSIZE
            return None
        data = message[:anssiz]
        if len(message) > anssiz:
            data = data[:2] + bytes([data[2] | 0x02]) + data[3:]  # "anhp->tc = 1"
        if data[:2] != query[:2]:
            return None  # glibc reads on for the right id; the server has nothing more
        return len(message), data
