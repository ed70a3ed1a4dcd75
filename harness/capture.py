"""``qmail-sim capture DOMAIN``: ask the resolver what qmail-remote would ask, write it down.

qmail-remote looks a domain up through dns.c: dns_cname() asks ANY and
follows each CNAME it finds (up to ten times), then dns_mxip() asks MX and
the A of each exchanger (the A of the domain when it has no MX), always with
``res_query`` into a buffer of PACKETSZ = 512 bytes. :func:`capture` runs
exactly that (:class:`server.dns.qmaildns.QmailDns`, unpatched, over
:class:`server.dns.resolver.LibcResolver` and resolv.conf), with a transport
that records every packet exchange: the server asked, UDP or TCP, what came
back (an rcode, no answer, a refused connection) and the whole answer's size
and records — a TCP answer is read whole even when qmail's buffer keeps 512
bytes of it.

The file it writes (YAML, :func:`dump`) holds resolv.conf's text, each
exchange, and what dns.c made of it; :func:`load` reads it back for
``reproduce --capture``, as :class:`harness.digparse.DigAnswer` runs (one per
question, its final answer) plus :func:`evidence`: the suspect of
:mod:`harness.reproduce_suspects` the capture shows, when the resolver
itself failed.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dnslib import QTYPE, RCODE, DNSRecord

from harness.digparse import DigAnswer, Record
from server.dns.qmaildns import DnsHard, DnsSoft, QmailDns
from server.dns.resolvconf import parse as parse_resolvconf
from server.dns.resolver import LibcResolver
from server.dns.transport import SocketDnsTransport
from server.net import DnsTimeout, DnsTransport

FORMAT = "qmail-sim capture 1"


@dataclass
class Exchange:
    name: str
    type: str
    server: str
    transport: str  # udp or tcp
    outcome: str  # an rcode name, "timeout", "refused" or "error: …"
    size: int = 0  # bytes of the whole answer
    tc: bool = False
    answer: list[str] = field(default_factory=list)  # zone-file lines


class Recorder:
    """A :class:`server.net.DnsTransport` that writes down each exchange."""

    def __init__(self, inner: DnsTransport) -> None:
        self.inner = inner
        self.exchanges: list[Exchange] = []

    def exchange(
        self, server: tuple[str, int], query: bytes, *, tcp: bool, timeout: float
    ) -> bytes:
        q = DNSRecord.parse(query).q
        seen = Exchange(
            name=str(q.qname).rstrip(".").lower(),
            type=QTYPE.get(q.qtype, str(q.qtype)),
            server=f"{server[0]}:{server[1]}",
            transport="tcp" if tcp else "udp",
            outcome="timeout",
        )
        self.exchanges.append(seen)
        try:
            wire = self.inner.exchange(server, query, tcp=tcp, timeout=timeout)
        except DnsTimeout:
            raise
        except ConnectionRefusedError:
            seen.outcome = "refused"
            raise
        except OSError as exc:
            seen.outcome = f"error: {exc}"
            raise
        seen.size = len(wire)
        try:
            reply = DNSRecord.parse(wire)
        except Exception:  # dnslib raises several kinds for a broken packet
            seen.outcome = "malformed"
            return wire
        seen.outcome = RCODE.get(reply.header.rcode, str(reply.header.rcode))
        seen.tc = bool(reply.header.tc)
        seen.answer = [rr.toZone() for rr in (*reply.rr, *reply.auth, *reply.ar)]
        return wire


def _step(what: str, call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except DnsSoft as exc:
        return f"{what}: DNS_SOFT ({exc.reason})", None
    except DnsHard as exc:
        return f"{what}: DNS_HARD ({exc.reason})", None


def capture(
    domain: str, resolv_conf_text: str, transport: DnsTransport | None = None
) -> dict[str, Any]:
    """dns_cname then dns_mxip for ``domain``, as qmail-remote asks them."""
    config = parse_resolvconf(resolv_conf_text)
    recorder = Recorder(transport or SocketDnsTransport())
    # the query ids only need to differ; qmail's order of MX is not random for one MX
    rng = random.Random(0)
    dns = QmailDns(LibcResolver(config, recorder, lambda: rng.getrandbits(16)))
    said, found = _step("CNAME lookup", lambda: dns.dns_cname(domain))
    results = [said]
    if found is not None:
        canonical = found[0]
        said, mx = _step("MX lookup", lambda: dns.dns_mxip(canonical, 0))
        results.append(said)
        if mx is not None:
            results.append("addresses: " + " ".join(ip.ip for ip in mx[0]))
    return {
        "capture": FORMAT,
        "domain": domain.lower().rstrip("."),
        "resolv_conf": resolv_conf_text,
        "exchanges": [asdict(e) for e in recorder.exchanges],
        "dns_c": results,
    }


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None  # resolv.conf stays readable as written
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(data: dict[str, Any]) -> str:
    out: str = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)
    return out


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("capture") != FORMAT:
        raise ValueError(f"{path}: not a file written by qmail-sim capture")
    return data


def _record(line: str) -> Record | None:
    words = line.split(None, 4)
    if len(words) < 5 or not words[1].isdigit():
        return None
    return Record(name=words[0].lower(), ttl=int(words[1]), type=words[3], rdata=words[4])


_RESOLVER_FAULTS = {"timeout", "refused", "REFUSED"}


def dig_answers(data: dict[str, Any]) -> list[DigAnswer]:
    """One answer per question: the last exchange for it (the one res_query kept).

    A question no server answered is left out (the resolver failed, not the
    domain): :func:`evidence` names that.
    """
    last: dict[tuple[str, str], dict[str, Any]] = {}
    tcs: set[tuple[str, str]] = set()
    for e in data["exchanges"]:
        key = (e["name"], e["type"])
        last[key] = e
        if e["tc"]:
            tcs.add(key)
    out = []
    for (name, qtype), e in last.items():
        if e["outcome"] in _RESOLVER_FAULTS:
            continue
        records = [r for line in e["answer"] if (r := _record(line)) is not None]
        out.append(
            DigAnswer(
                qname=name,
                qtype=qtype,
                status=e["outcome"],
                answer=records,
                msg_size=e["size"],
                truncated=(name, qtype) in tcs,
            )
        )
    return out


def evidence(data: dict[str, Any]) -> str | None:
    """The resolver suspect the first question's exchanges show, if any."""
    first = data["exchanges"][:1]
    if not first:
        return None
    key = (first[0]["name"], first[0]["type"])
    outcomes = {e["outcome"] for e in data["exchanges"] if (e["name"], e["type"]) == key}
    if outcomes == {"timeout"}:
        return "dead-ns"
    if outcomes == {"refused"}:
        return "refused-ns"
    if outcomes <= {"timeout", "refused"}:
        return "dead-ns"
    if outcomes == {"REFUSED"}:
        return "nonrecursive"
    return None
