"""glibc res_query semantics over a fake transport; resolv.conf parsing."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from dnslib import RCODE, DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from server.dns import resolvconf
from server.dns.resolver import (
    HOST_NOT_FOUND,
    NO_DATA,
    NO_RECOVERY,
    TRY_AGAIN,
    LibcResolver,
    ResolveError,
    ResolverConfig,
)
from server.net import DnsTimeout

from .fakes import FakeTransport, zone

ZONE = zone(
    "far.example. 300 IN MX 10 mx.far.example.\n"
    "mx.far.example. 300 IN A 127.0.2.10\n"
    + "".join(f'big.example. 300 IN TXT "{"x" * 60}{i}"\n' for i in range(12))
)
TWO = ResolverConfig(nameservers=(("127.0.0.1", 53), ("127.0.0.2", 53)))


def resolver(transport: FakeTransport, config: ResolverConfig = TWO) -> LibcResolver:
    ids = itertools.count(100)
    return LibcResolver(config, transport, lambda: next(ids))


def rcode_handler(rcode: int, by_server: dict[str, int] | None = None) -> FakeTransport:
    def handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        reply = DNSRecord.parse(query).reply()
        reply.header.rcode = (by_server or {}).get(server[0], rcode)
        return bytes(reply.pack())

    return FakeTransport(handler=handler)


@pytest.mark.parametrize(
    ("rcode", "h_errno"),
    [
        (RCODE.NXDOMAIN, HOST_NOT_FOUND),
        (RCODE.NOERROR, NO_DATA),
        (RCODE.FORMERR, NO_RECOVERY),
        (RCODE.SERVFAIL, TRY_AGAIN),
        (RCODE.REFUSED, TRY_AGAIN),  # every server refused: nothing answered
        (RCODE.NOTIMP, TRY_AGAIN),
    ],
)
def test_rcode_to_h_errno(rcode: int, h_errno: int) -> None:
    with pytest.raises(ResolveError) as info:
        resolver(rcode_handler(rcode)).res_query("x.example", 1, 512)
    assert info.value.h_errno == h_errno


def test_servfail_moves_to_next_server() -> None:
    transport = rcode_handler(RCODE.NOERROR, {"127.0.0.1": RCODE.SERVFAIL})
    with pytest.raises(ResolveError) as info:
        resolver(transport).res_query("x.example", 1, 512)
    assert info.value.h_errno == NO_DATA  # the second server's answer
    assert len(transport.log) == 2


def test_timeouts_try_every_server_twice() -> None:
    waits: list[tuple[str, float]] = []

    class Silent:
        def exchange(
            self, server: tuple[str, int], query: bytes, *, tcp: bool, timeout: float
        ) -> bytes:
            waits.append((server[0], timeout))
            raise DnsTimeout("silent")

    res = LibcResolver(TWO, Silent(), lambda: 1)
    with pytest.raises(ResolveError) as info:
        res.res_query("x.example", 1, 512)
    assert info.value.h_errno == TRY_AGAIN and info.value.errno == 110  # ETIMEDOUT
    # retrans << ns, divided by nscount for ns > 0 (res_send.c send_dg)
    assert waits == [("127.0.0.1", 5.0), ("127.0.0.2", 5.0)] * 2


def test_refused_everywhere_is_econnrefused() -> None:
    def handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        raise ConnectionRefusedError(111, "refused")

    with pytest.raises(ResolveError) as info:
        resolver(FakeTransport(handler=handler)).res_query("x.example", 1, 512)
    assert info.value.errno == 111 and info.value.h_errno == TRY_AGAIN


def test_wrong_id_and_wrong_question_are_ignored() -> None:
    def wrong_id(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        reply = DNSRecord.parse(query).reply()
        reply.header.id ^= 1
        return bytes(reply.pack())

    def other_question(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        reply = DNSRecord.question("other.example").reply()
        reply.header.id = DNSRecord.parse(query).header.id
        return bytes(reply.pack())

    for handler in (wrong_id, other_question):
        with pytest.raises(ResolveError) as info:
            resolver(FakeTransport(handler=handler)).res_query("x.example", 1, 512)
        assert info.value.h_errno == TRY_AGAIN


def test_tc_goes_to_tcp_and_keeps_full_length() -> None:
    transport = FakeTransport(ZONE)
    answer = resolver(transport).res_query("big.example", 255, 512)
    assert [t for _, _, t in transport.log] == ["udp", "tcp"]
    assert answer.length > 512 and len(answer.data) == 512
    assert answer.data[2] & 0x02  # TC set in the copy (send_vc "truncating")


def test_small_answer_over_udp() -> None:
    transport = FakeTransport(ZONE)
    answer = resolver(transport).res_query("far.example", 15, 512)
    assert answer.length == len(answer.data) < 512
    assert [t for _, _, t in transport.log] == ["udp"]


def test_usevc_starts_with_tcp() -> None:
    transport = FakeTransport(ZONE)
    answer = resolver(transport).res_query("big.example", 255, 65536, usevc=True)
    assert [t for _, _, t in transport.log] == ["tcp"]
    assert answer.length == len(answer.data) > 512


def test_undersized_answer_is_skipped() -> None:
    transport = FakeTransport(handler=lambda s, q, t: b"\0\0")
    with pytest.raises(ResolveError) as info:
        resolver(transport).res_query("x.example", 1, 512)
    assert info.value.h_errno == TRY_AGAIN


def test_bad_name_is_no_recovery() -> None:
    with pytest.raises(ResolveError) as info:
        resolver(FakeTransport(ZONE)).res_query("a..b", 1, 512)
    assert info.value.h_errno == NO_RECOVERY


class TestResolvConf:
    def test_glibc_lines(self) -> None:
        config = resolvconf.parse(
            "# comment\n; another\nsearch x.example\nnameserver 10.0.0.1\n"
            "nameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n"
            "options timeout:2 attempts:9 rotate\n"
        )
        assert config.nameservers == (("10.0.0.1", 53), ("10.0.0.2", 53), ("10.0.0.3", 53))
        assert (config.timeout, config.attempts) == (2, 5)

    def test_ports(self) -> None:
        config = resolvconf.parse(
            "nameserver 127.0.0.1:5353\nnameserver [::1]:5300\nnameserver ::1\noptions port:99\n"
        )
        assert config.nameservers == (("127.0.0.1", 5353), ("::1", 5300), ("::1", 99))

    def test_defaults(self) -> None:
        assert resolvconf.parse("nameserver bogus\n") == ResolverConfig()

    def test_which_file(self, tmp_path: Path) -> None:
        assert resolvconf.resolvconf_path(tmp_path) == Path("/etc/resolv.conf")
        own = tmp_path / ".qmail-sim" / "resolv.conf"
        own.parent.mkdir()
        own.write_text("nameserver 127.0.0.9\n")
        assert resolvconf.resolvconf_path(tmp_path) == own
        assert resolvconf.load(own).nameservers == (("127.0.0.9", 53),)
        given = tmp_path / "x"
        assert resolvconf.resolvconf_path(tmp_path, given) == given
        assert resolvconf.load(given) == ResolverConfig()


def test_tc_answer_without_question_is_ignored() -> None:
    """res_queriesmatch: qdcount differs, so glibc drops it and waits (dnslib's truncate())."""

    def handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        if tcp:
            return bytes(DNSRecord.parse(query).reply().pack())
        bare = DNSRecord.parse(query).reply()
        bare.questions = []
        bare.header.tc = 1
        return bytes(bare.pack())

    transport = FakeTransport(handler=handler)
    with pytest.raises(ResolveError) as info:
        resolver(transport).res_query("x.example", 1, 512)
    assert info.value.h_errno == TRY_AGAIN
    assert {t for _, _, t in transport.log} == {"udp"}


def test_edns0_and_trust_ad_from_resolv_conf() -> None:
    config = resolvconf.parse("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    assert config.edns0 and config.trust_ad
    sent: list[bytes] = []

    def handler(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        sent.append(query)
        return bytes(DNSRecord.parse(query).reply().pack())

    with pytest.raises(ResolveError):
        resolver(FakeTransport(handler=handler), config).res_query("x.example", 1, 513)
    parsed = DNSRecord.parse(sent[0])
    assert parsed.header.ad == 1
    assert [(rr.rtype, rr.rclass) for rr in parsed.ar] == [(41, 513)]


@given(st.text(max_size=300))
def test_resolv_conf_never_raises(text: str) -> None:
    config = resolvconf.parse(text)
    assert 1 <= len(config.nameservers) <= 3
    assert all(0 < port < 65536 for _, port in config.nameservers)
