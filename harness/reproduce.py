"""Build a scenario that reproduces a qmail-send deferral, and find what fixes it.

Input: one parsed log line (:mod:`harness.logparse`), the DNS answers captured
for the domain (:mod:`harness.digparse` runs, or zone-file text), the domain
and the recipient. :func:`build` turns them into a :class:`Reproduction`: a
scenario as plain data (what ``yaml.safe_dump`` writes and the loader reads)
plus the reasons for each choice, in words, for the report.

How the observed condition becomes the fake DNS (qmail-remote.c: dns_cname()
asks ANY first — its DNS_SOFT is ``CNAME lookup failed temporarily.
(#4.4.3)`` — then dns_mxip() asks MX and A, whose DNS_SOFT is ``Sorry, I
couldn't find any host by that name. (#4.1.2)`` and DNS_HARD the #5.1.2
failure):

- the captured records go into the zone, every address moved to a loopback
  127.0.2.N (a fake peer listens there; nothing leaves the machine);
- per captured query: SERVFAIL/REFUSED/… become an ``rcode`` rule, no answer
  a ``timeout`` rule, an answer over 512 bytes (MSG SIZE, tc, dig's TCP
  retry) a ``pad_to`` rule of that size;
- when no captured query failed, the log's code picks the likeliest cause
  (#4.4.3: SERVFAIL on ANY; #4.1.2: SERVFAIL on MX; #5.1.2: NXDOMAIN), said
  as a guess;
- a report about the remote server (no connection, or ``Remote host said:``
  after a stage, qmail-remote.c quit()) becomes the peers' script.

A CNAME loop needs nothing special: its records go into the zone and the
fake DNS follows them as a server would.

The changes tried by ``--run`` are in :mod:`harness.reproduce_fixes`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dnslib import QTYPE, RR

from harness.digparse import DigAnswer, Record
from harness.logparse import LogLine

PEER_NET = "127.0.2."  # loopback addresses handed to the domain's mail exchangers
FIRST_PEER = 10
SENDER = "alice"
ME = "mx.example.org"
#: rcodes the fake DNS can give (docs/scenarios.md, dns.rules)
RCODES = {"FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"}

Data = dict[str, Any]


@dataclass
class Reproduction:
    scenario: Data
    domain: str
    recipient: str
    expect_text: str  # what the log must show, e.g. "deferral: CNAME_lookup…"
    notes: list[str] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)  # real → loopback


def _bare(name: str) -> str:
    return name.lower().rstrip(".")


class _Addresses:
    """Real addresses to 127.0.2.N, the same one each time an address recurs."""

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}

    def __call__(self, real: str) -> str:
        if real not in self.mapping:
            self.mapping[real] = f"{PEER_NET}{FIRST_PEER + len(self.mapping)}"
        return self.mapping[real]


def _zone_from_records(records: Sequence[Record], addr: _Addresses) -> list[str]:
    lines: list[str] = []
    for r in records:
        if r.type == "AAAA":  # qmail-remote (netqmail) asks A only
            continue
        rdata = addr(r.rdata) if r.type == "A" else r.rdata
        line = f"{r.name} {r.ttl} IN {r.type} {rdata}"
        if line not in lines:
            lines.append(line)
    return lines


def zone_records(text: str) -> list[Record]:
    """A zone file's records ($ORIGIN, $TTL, relative names, parentheses as dnslib reads them)."""
    if not text.strip():
        return []
    try:
        rrs = RR.fromZone(text)
    except Exception as exc:  # dnslib raises several kinds for a bad zone
        raise ValueError(f"the zone file does not parse: {exc}") from None
    return [
        Record(
            name=str(rr.rname).lower(), ttl=rr.ttl, type=QTYPE[rr.rtype], rdata=rr.rdata.toZone()
        )
        for rr in rrs
    ]


def _rule_for(run: DigAnswer) -> tuple[Data | None, str]:
    name = _bare(run.qname)
    qtype = run.qtype or "*"
    if run.timed_out:
        return {"name": name, "type": qtype, "timeout": True}, f"{name} {qtype}: no answer"
    if run.status in RCODES and run.status != "NXDOMAIN":
        rule = {"name": name, "type": qtype, "rcode": run.status}
        return rule, f"{name} {qtype}: {run.status}"
    if run.oversize:
        size = max(run.msg_size or 0, 513)
        why = f"{name} {qtype}: answer of {size} bytes (over 512, TC over UDP)"
        return {"name": name, "type": qtype, "pad_to": size}, why
    if run.status == "NXDOMAIN":  # the name does not exist, whatever the type
        return {"name": name, "rcode": "NXDOMAIN"}, f"{name} {qtype}: NXDOMAIN"
    return None, f"{name} {qtype}: {run.status or 'answered'} (taken into the zone)"


def _guess(line: LogLine, domain: str) -> tuple[Data | None, str]:
    """(rule, note) when no DNS was captured: the log's code decides."""
    code = line.code or ""
    if code == "4.4.3":
        return {"name": domain, "type": "ANY", "rcode": "SERVFAIL"}, "SERVFAIL on ANY"
    if code == "4.1.2":
        return {"name": domain, "type": "MX", "rcode": "SERVFAIL"}, "SERVFAIL on MX"
    if code == "5.1.2":
        return {"name": domain, "rcode": "NXDOMAIN"}, "NXDOMAIN"
    return None, "no DNS condition"


#: qmail-remote.c's quit() texts (as logsafe() leaves them) → the peer's stage
_REMOTE_STAGES = (
    ("_but_greeting_failed.", "greeting"),
    ("_but_my_name_was_rejected.", "helo"),
    ("_but_sender_was_rejected.", "mail"),
    ("_does_not_like_recipient.", "rcpt"),
    ("_failed_on_DATA_command.", "data"),
    ("_failed_after_I_sent_the_message.", "end"),
)
_SMTP_LINE = re.compile(r"\d{3}(?:[-_ ].*)?")


def peer_script(line: LogLine) -> tuple[Data | None, str]:
    """The peer's behaviour the report describes (qmail-remote.c), or None."""
    if "Sorry,_I_wasn't_able_to_establish_an_SMTP_connection." in line.text:
        return {"refuse": True}, "the mail exchanger refuses connections"
    stage = next((st for text, st in _REMOTE_STAGES if text in line.text), None)
    _, said, rest = line.text.partition("Remote_host_said:_")
    if stage is None or not said:
        return None, ""
    replies = []
    for piece in rest.split("/"):
        if not _SMTP_LINE.fullmatch(piece):
            break
        replies.append(piece.replace("_", " "))
    if not replies:
        return None, ""
    # a peer's rcpt reply is one line (docs/scenarios.md, peers); other stages take a list
    single = len(replies) == 1 or stage == "rcpt"
    script: Data = {stage: replies[-1] if single else replies}
    return script, f"the mail exchanger answers {stage} with {replies[-1]!r}"


def _mx_hosts(zone: list[str], domain: str) -> list[str]:
    hosts = []
    for line in zone:
        words = line.split()
        if _bare(words[0]) == domain and words[3] == "MX" and len(words) >= 6:
            hosts.append(_bare(words[5]))
    return hosts


def _complete_zone(zone: list[str], domain: str, notes: list[str]) -> None:
    """Make sure the domain can deliver once the condition is gone: an MX with an A."""
    names_with_a = {_bare(line.split()[0]) for line in zone if line.split()[3] == "A"}
    aliases = {_bare(line.split()[0]) for line in zone if line.split()[3] == "CNAME"}
    if domain in aliases:  # a CNAME may have no other data beside it (RFC 1034 3.6.2)
        return
    mx = _mx_hosts(zone, domain)
    if not mx and domain not in names_with_a:
        host = f"mx.{domain}"
        zone.append(f"{domain}. 300 IN MX 10 {host}.")
        mx = [host]
        notes.append(f"no MX or A captured for {domain}: added MX {host}")
    for host in mx:
        if host not in names_with_a:
            taken = {line.split()[4] for line in zone if line.split()[3] == "A"}
            n = FIRST_PEER
            while f"{PEER_NET}{n}" in taken:
                n += 1
            zone.append(f"{host}. 300 IN A {PEER_NET}{n}")
            notes.append(f"no address captured for {host}: gave it {PEER_NET}{n}")


_IPV4 = re.compile(r"(?<!\d)(?<!\d\.)\d{1,3}(?:\.\d{1,3}){3}(?!\d|\.\d)")


def _moved(text: str, mapping: dict[str, str], peers: list[str]) -> str:
    """The report with each remote address replaced by the loopback one that plays it."""

    def swap(m: re.Match[str]) -> str:
        if m[0] in mapping:
            return mapping[m[0]]
        return peers[0] if peers and not m[0].startswith("127.") else m[0]

    return _IPV4.sub(swap, text)


def _peer_addresses(zone: list[str]) -> list[str]:
    out = []
    for line in zone:
        words = line.split()
        if words[3] == "A" and words[4].startswith(PEER_NET) and words[4] not in out:
            out.append(words[4])
    return out


def _rules_for(
    line: LogLine, domain: str, dig: Sequence[DigAnswer], *, captured: bool, notes: list[str]
) -> list[Data]:
    """One rule per failed captured query; a guess from the report when none failed."""
    rules: list[Data] = []
    for run in dig:
        rule, why = _rule_for(run)
        notes.append(f"captured: {why}")
        if rule is not None and rule not in rules:
            rules.append(rule)
    if not rules:
        rule, why = _guess(line, domain)
        if rule is not None:
            said = "no failure captured" if captured else "no DNS captured"
            notes.append(f"{said}: guessing {why} from the report's code")
            rules.append(rule)
    return rules


def build(
    line: LogLine,
    *,
    domain: str,
    recipient: str | None = None,
    dig: Sequence[DigAnswer] = (),
    zone_text: str | None = None,
) -> Reproduction:
    """The scenario for ``line`` with the captured DNS; see the module docstring."""
    if line.kind not in ("deferral", "failure"):
        raise ValueError(f"a {line.kind} line is no deferral or failure to reproduce")
    domain = _bare(domain)
    rcpt = recipient or f"postmaster@{domain}"
    notes: list[str] = []
    addr = _Addresses()
    records = zone_records(zone_text or "") + [r for run in dig for r in run.records]
    zone = _zone_from_records(records, addr)
    rules = _rules_for(line, domain, dig, captured=bool(dig) or zone_text is not None, notes=notes)
    # the domain itself gone: nothing to complete; an exchanger gone: it gets an address
    if not any(r.get("rcode") == "NXDOMAIN" and "type" not in r and r["name"] == domain
               for r in rules):  # fmt: skip
        _complete_zone(zone, domain, notes)
    script, why = peer_script(line)
    if script is not None:
        notes.append(f"from the report: {why}")
    peers: Data = {ip: dict(script or {"accept": "all"}) for ip in _peer_addresses(zone)}
    expect_text = f"{line.kind}: {_moved(line.text, addr.mapping, list(peers))}"
    title = (line.report.splitlines() or [""])[0]
    scenario: Data = {
        "name": f"reproduce: {line.kind} for {rcpt}: {title}",
        "tags": ["reproduce", "dns"],
        "control": {"me": ME, "locals": [ME, "example.org"], "rcpthosts": [ME, "example.org"]},
        "users": {SENDER: {}},
        "dns": {"zone": "\n".join(zone) + "\n", **({"rules": rules} if rules else {})},
        "peers": peers,
        "steps": [
            {
                "inject": {
                    "args": [rcpt],
                    "env": {"QMAILUSER": SENDER, "QMAILHOST": "example.org"},
                    "message": "Subject: reproduce\n\nbody\n",
                }
            },
            {"run": "idle"},
            {"expect": {"log": [expect_text]}},
        ],
    }
    return Reproduction(
        scenario=scenario,
        domain=domain,
        recipient=rcpt,
        expect_text=expect_text,
        notes=notes,
        addresses=dict(addr.mapping),
    )
