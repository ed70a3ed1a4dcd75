"""qmail-remote end to end with the fake DNS and scripted peers: every message text."""

from __future__ import annotations

import io
import itertools
import struct
import tempfile
from pathlib import Path

import pytest
from dnslib import DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from server.dns.qmaildns import QmailDns
from server.dns.resolver import LibcResolver, ResolverConfig
from server.programs import ProgramContext
from server.quote import quote_bytes as quote
from server.remote import replies as R
from server.remote.program import World, run
from server.remote.routes import Route, SmtpRoutes
from server.remote.tcpto import SIZE, Tcpto
from server.runtime import virtual_runtime

from .dns.fakes import FakeTransport, zone
from .fakes import FakeConnector

ZONE = """
far.example.     300 IN MX 10 mx1.far.example.
far.example.     300 IN MX 20 mx2.far.example.
mx1.far.example. 300 IN A 127.0.2.11
mx2.far.example. 300 IN A 127.0.2.12
alias.example.   300 IN CNAME far.example.
self.example.    300 IN MX 10 me.self.example.
self.example.    300 IN MX 20 other.self.example.
me.self.example. 300 IN A 127.0.0.99
other.self.example. 300 IN A 127.0.2.20
best.example.    300 IN MX 10 me.self.example.
best.example.    300 IN MX 20 mx1.far.example.
plain.example.   300 IN A 127.0.2.30
"""
OK: dict[str, dict[str, str]] = {"127.0.2.11": {}, "127.0.2.12": {}, "127.0.2.30": {}}


def make_home(tmp_path: Path, **controls: str) -> Path:
    home = tmp_path / "home"
    (home / "control").mkdir(parents=True)
    (home / "queue" / "lock").mkdir(parents=True)
    (home / "queue" / "lock" / "tcpto").write_bytes(b"\0" * SIZE)
    (home / "control" / "me").write_text("me.example\n")
    for name, text in controls.items():
        (home / "control" / name).write_text(text)
    return home


class Remote:
    def __init__(self, tmp_path: Path, peers: dict[str, object] | None = None, **controls: str):
        self.home = make_home(tmp_path, **controls)
        runtime, self.clock = virtual_runtime()
        self.ctx = ProgramContext(home=self.home, runtime=runtime, stderr=io.BytesIO())
        self.transport = FakeTransport(zone(ZONE))
        self.connector = FakeConnector(dict(peers if peers is not None else OK))  # type: ignore[arg-type]
        self.patched = False

    def world(self) -> World:
        ids = itertools.count(1)
        resolver = LibcResolver(ResolverConfig(), self.transport, lambda: next(ids))
        return World(
            dns=QmailDns(resolver, self.patched),
            connector=self.connector,
            tcpto=Tcpto(self.home / "queue/lock/tcpto", self.ctx.runtime.now, 4242),
            local_ips=["127.0.0.99"],
            now=self.ctx.runtime.now(),
            pid=4242,
        )

    def __call__(self, host: str, *recips: str, message: bytes = b"Subject: x\n\nhi\n") -> bytes:
        argv = ["qmail-remote", host, "alice@me.example", *recips]
        return run(argv, lambda: message, self.ctx, self.world())


def final(output: bytes) -> bytes:
    return output.split(b"\0")[-2]


def test_delivers_to_best_mx(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    out = remote("far.example", "bob@far.example")
    assert out.startswith(b"r\0K127.0.2.11 accepted message.\n")
    assert remote.connector.attempts == [("127.0.2.11", 25)]
    sent = bytes(remote.connector.connections[0].received)
    assert b"HELO me.example\r\n" in sent and b"RCPT TO:<bob@far.example>\r\n" in sent


def test_recipient_domain_canonicalised(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote("alias.example", "bob@alias.example")
    assert b"RCPT TO:<bob@far.example>\r\n" in bytes(remote.connector.connections[0].received)


def test_cname_soft(tmp_path: Path) -> None:
    remote = Remote(tmp_path)

    def servfail(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        reply = DNSRecord.parse(query).reply()
        reply.header.rcode = 2
        return bytes(reply.pack())

    remote.transport.handler = servfail
    assert (
        remote("far.example", "bob@far.example")
        == b"ZCNAME lookup failed temporarily. (#4.4.3)\n\0"
    )


def test_oversize_any_unpatched_and_patched(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.transport.records += zone(
        "".join(f'far.example. 300 IN TXT "{"x" * 60}{i}"\n' for i in range(12))
    )
    assert final(remote("far.example", "bob@far.example")) == R.DNSCANON.encode()
    remote.patched = True
    assert final(remote("far.example", "bob@far.example")).startswith(b"K127.0.2.11 accepted")


def test_no_such_host(tmp_path: Path) -> None:
    out = Remote(tmp_path)("nowhere.example", "bob@nowhere.example")
    assert out == b"DSorry, I couldn't find any host named nowhere.example. (#5.1.2)\n\0"


def test_outsafe_host_name(tmp_path: Path) -> None:
    out = Remote(tmp_path)("bad host\x01.example", "bob@x")
    assert b"named bad?host?.example. (#5.1.2)" in out


def test_dns_temporary(tmp_path: Path) -> None:
    remote = Remote(tmp_path)

    def flaky(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        parsed = DNSRecord.parse(query)
        reply = parsed.reply()
        reply.header.rcode = 2 if parsed.q.qtype == 15 else 3
        return bytes(reply.pack())

    remote.transport.handler = flaky
    assert final(remote("far.example", "bob@far.example")) == R.DNS_TEMP.encode()


def test_no_mx_no_a(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.transport.records += zone("empty.example. 300 IN MX 10 nothing.example.\n")
    assert final(remote("empty.example", "bob@empty.example")) == R.NOMX.encode()


def test_ambiguous_mx(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.transport.records += zone("mine.example. 300 IN MX 5 me.self.example.\n")
    out = remote("mine.example", "bob@mine.example")
    assert out == R.AMBIGMX.encode() + b"\0"
    assert out.startswith(
        b"DSorry. Although I'm listed as a best-preference MX or A for that host,\n"
    )


def test_skips_mx_at_or_below_my_preference(tmp_path: Path) -> None:
    remote = Remote(tmp_path, {"127.0.2.20": {}})
    assert final(remote("best.example", "bob@best.example")) == R.AMBIGMX.encode()
    remote2 = Remote(tmp_path / "2", {"127.0.2.20": {}})
    # self.example: my MX has pref 10, so pref 20 is not tried either
    assert final(remote2("self.example", "bob@self.example")) == R.AMBIGMX.encode()


def test_all_aliases_tries_every_mx(tmp_path: Path) -> None:
    remote = Remote(tmp_path, {"127.0.2.20": {}})
    remote.transport.records += zone("ali.example. 300 IN CNAME self.example.\n")
    # the recipient domain was an alias: prefme = 500000, our own MX is tried too
    out = remote("self.example", "bob@ali.example")
    assert remote.connector.attempts[0] == ("127.0.0.99", 25)
    assert final(out).startswith(b"K127.0.2.20 accepted")


def test_next_mx_after_connect_failure(tmp_path: Path) -> None:
    remote = Remote(tmp_path, {"127.0.2.11": TimeoutError(), "127.0.2.12": {}})
    assert final(remote("far.example", "bob@far.example")).startswith(b"K127.0.2.12 accepted")
    assert remote.connector.attempts == [("127.0.2.11", 25), ("127.0.2.12", 25)]


def test_greeting_failure_does_not_try_next_mx(tmp_path: Path) -> None:
    remote = Remote(tmp_path, {"127.0.2.11": {"greeting": b"421 no\r\n"}, "127.0.2.12": {}})
    out = remote("far.example", "bob@far.example")
    assert out == b"ZConnected to 127.0.2.11 but greeting failed.\nRemote host said: 421 no\n\0"
    assert len(remote.connector.attempts) == 1


def test_no_connection(tmp_path: Path) -> None:
    remote = Remote(tmp_path, {})
    assert remote("far.example", "bob@far.example") == R.NOCONN.encode() + b"\0"


def test_tcpto_skips_host_after_two_timeouts(tmp_path: Path) -> None:
    remote = Remote(tmp_path, {"127.0.2.11": TimeoutError(), "127.0.2.12": {}})
    remote("far.example", "bob@far.example")
    remote.clock.advance(200)
    remote("far.example", "bob@far.example")
    remote.clock.advance(10)
    remote.connector.attempts.clear()
    remote("far.example", "bob@far.example")
    assert remote.connector.attempts == [("127.0.2.12", 25)]


def test_smtproutes(tmp_path: Path) -> None:
    remote = Remote(
        tmp_path,
        {"127.0.2.30": {}, "127.0.5.5": {}},
        smtproutes=".far.example:\nfar.example:plain.example:2525\n:[127.0.5.5]\n",
    )
    out = remote("far.example", "bob@alias.example")
    assert final(out).startswith(b"K127.0.2.30 accepted")
    assert remote.connector.attempts == [("127.0.2.30", 2525)]
    # routed: no CNAME lookups, the recipient is sent as given
    assert b"RCPT TO:<bob@alias.example>" in bytes(remote.connector.connections[0].received)
    assert all(qtype != 255 for _, qtype, _ in remote.transport.log)
    remote.connector.attempts.clear()
    remote("sub.far.example", "bob@sub.far.example")  # ".far.example:" -> MX as usual
    remote("other.example", "bob@other.example")  # default route
    assert remote.connector.attempts[-1] == ("127.0.5.5", 25)


def test_helohost_and_quoting(tmp_path: Path) -> None:
    remote = Remote(tmp_path, helohost="helo.example\n")
    remote("far.example", 'we ird"@far.example')
    sent = bytes(remote.connector.connections[0].received)
    assert b"HELO helo.example\r\n" in sent
    assert b'RCPT TO:<"we ird\\""@far.example>\r\n' in sent


def test_quote() -> None:
    assert quote(b"bob") == b"bob"
    assert quote(b"") == b'""'
    assert quote(b"a..b") == b'"a..b"'
    assert quote(b".a") == b'".a"'
    assert quote(b"a b") == b'"a b"'
    assert quote(b"x\\y") == b'"x\\\\y"'


def test_usage_and_controls(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    assert run(["qmail-remote", "x", "y"], bytes, remote.ctx, remote.world()) == (
        R.USAGE.encode() + b"\0"
    )
    (remote.home / "control" / "me").unlink()
    assert final(remote("far.example", "bob@far.example")) == R.CONTROL.encode()


def test_bounce_sender(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    run(
        ["qmail-remote", "far.example", "", "bob@far.example"],
        lambda: b"x\n",
        remote.ctx,
        remote.world(),
    )
    assert b"MAIL FROM:<>\r\n" in bytes(remote.connector.connections[0].received)


@pytest.mark.parametrize("recips", [1, 3])
def test_report_count(tmp_path: Path, recips: int) -> None:
    out = Remote(tmp_path)("far.example", *[f"u{i}@far.example" for i in range(recips)])
    assert out.count(b"\0") == recips + 1


@settings(max_examples=60, deadline=None)
@given(
    dns_body=st.binary(max_size=60),
    ancount=st.integers(min_value=0, max_value=3),
    rcode=st.sampled_from([0, 0, 0, 2, 3, 5]),
    smtp=st.lists(st.binary(max_size=30), max_size=6),
)
def test_random_dns_and_smtp_give_one_kzd(
    dns_body: bytes, ancount: int, rcode: int, smtp: list[bytes]
) -> None:
    """Junk DNS answers and junk SMTP replies: reports, then exactly one K, Z or D."""
    with tempfile.TemporaryDirectory() as tmp:
        out = _junk_delivery(Path(tmp), dns_body, ancount, rcode, smtp)
    reports = out.split(b"\0")
    assert reports[-1] == b"" and reports[-2][:1] in (b"K", b"Z", b"D")
    assert all(r[:1] in (b"r", b"h", b"s") for r in reports[:-2])


def _junk_delivery(
    tmp_path: Path, dns_body: bytes, ancount: int, rcode: int, smtp: list[bytes]
) -> bytes:
    remote = Remote(tmp_path)
    script = iter(smtp)

    def dns(server: tuple[str, int], query: bytes, tcp: bool) -> bytes:
        if DNSRecord.parse(query).q.qtype == 1:  # A: point somewhere with a peer
            reply = DNSRecord.parse(query).reply()
            reply.add_answer(*zone("x. 1 IN A 127.0.2.11"))
            return bytes(reply.pack())
        flags = 0x8180 | rcode
        return query[:2] + struct.pack("!HHHHH", flags, 1, ancount, 0, 0) + query[12:] + dns_body

    remote.transport.handler = dns
    remote.connector.peers["127.0.2.11"] = {
        key: (lambda line: next(script, None))
        for key in ("greeting", "HELO", "MAIL", "RCPT", "DATA", "body")
    }
    return remote("x.example", "bob@x.example")


@given(st.lists(st.text(max_size=20), max_size=6), st.text(max_size=20))
def test_smtproutes_never_raise(lines: list[str], host: str) -> None:
    route = SmtpRoutes(lines).lookup(host)
    assert route.relay is None or isinstance(route.relay, str)
    assert 0 <= route.port < 65536


def test_smtproutes_rules() -> None:
    routes = SmtpRoutes(["a.example:one", "A.EXAMPLE:two", ".b.example:", ":default:26"])
    assert routes.lookup("a.example") == Route("two")  # the last line wins, any case
    assert routes.lookup("x.b.example") == Route(None)  # empty relay: MX as usual
    assert routes.lookup("b.example") == Route("default", 26)
    assert SmtpRoutes(["x:relay:junk"]).lookup("x") == Route("relay", 0)
    assert SmtpRoutes(["nocolon"]).lookup("nocolon") == Route(None)
