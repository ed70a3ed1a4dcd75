"""Suspects for a DNS deferral, the resolver among them, ranked by how well each fits.

qmail-remote's dns.c calls ``res_query`` (never the search list: qmail-remote
calls dns_init(0), so ``search``, ``domain`` and ``ndots`` in resolv.conf
change nothing) and maps a failure to DNS_SOFT when errno is ECONNREFUSED
or h_errno is TRY_AGAIN (dns.c resolve()). glibc's res_send gives
ECONNREFUSED when no name server was reached at all, ETIMEDOUT (then
TRY_AGAIN) when one was reached but none answered usefully, and skips a
server's SERVFAIL, NOTIMP or REFUSED (:mod:`server.dns.resolver`). So the
same ``CNAME_lookup_failed_temporarily._(#4.4.3)`` comes from:

============  ================================================  ==================
suspect       in the scenario                                   result after
============  ================================================  ==================
dead-ns       resolv.conf names a server nobody answers on      timeout × rounds
refused-ns    ... an address that refuses (ICMP unreachable)    at once
nonrecursive  the server answers REFUSED (recursion off)        at once
servfail      the ANY query gets SERVFAIL                       at once
oversize      the ANY answer is over 512 bytes (unpatched)      at once (UDP+TCP)
============  ================================================  ==================

Each suspect is a change of the base scenario; :func:`rank` plays each on the
simulator (does it log the same line?) and compares the log's time from
``starting delivery`` to the result with what the suspect predicts (the
simulator's DNS waits take no virtual time, so the times are worked out
here from resolv.conf: glibc waits ``timeout << ns`` for server ``ns``,
divided by the server count when ``ns > 0``, over ``attempts`` rounds).
The simulator cannot refuse a UDP packet, so refused-ns is played like
dead-ns; only the time tells them apart.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from server.dns.resolver import MAXNS, ResolverConfig

Data = dict[str, Any]
Runner = Callable[[Data], tuple[bool, str]]
RESOLVER_NET = "127.0.3."  # loopback addresses standing for resolv.conf's servers
TIME_SLACK = 1.0  # seconds a log's delay may differ from the prediction


def total_wait(config: ResolverConfig) -> int:
    """Seconds res_query waits for one question when no server ever answers."""
    servers = len(config.nameservers[:MAXNS])
    per_round = 0
    for ns in range(servers):
        seconds = config.timeout << ns
        if ns > 0:
            seconds //= servers
        per_round += max(seconds, 1)
    return per_round * config.attempts


def loopback_servers(config: ResolverConfig) -> list[str]:
    """resolv.conf's servers, played by 127.0.3.N (nothing leaves the machine)."""
    return [f"{RESOLVER_NET}{10 + i}" for i in range(len(config.nameservers[:MAXNS]))]


def _dead(data: Data, config: ResolverConfig) -> Data:
    out = copy.deepcopy(data)
    out["dns"]["resolv_conf"] = loopback_servers(config)
    return out


def _rule(data: Data, rule: Data) -> Data:
    out = copy.deepcopy(data)
    rules = [r for r in out["dns"].get("rules", []) if r.get("name") != rule["name"]]
    out["dns"]["rules"] = [rule, *rules]
    return out


@dataclass(frozen=True)
class Suspect:
    name: str
    meaning: str
    scenario: Data
    predicted: float  # seconds from starting delivery to the result
    resolver: bool  # a fault of resolv.conf or its server


def suspects(data: Data, domain: str, config: ResolverConfig) -> list[Suspect]:
    wait = float(total_wait(config))
    names = ", ".join(h for h, _ in config.nameservers[:MAXNS])
    return [
        Suspect(
            "dead-ns",
            f"no name server in resolv.conf answers ({names}: {wait:.0f}s of waiting)",
            _dead(data, config),
            wait,
            True,
        ),
        Suspect(
            "refused-ns",
            f"the name servers in resolv.conf refuse the connection ({names})",
            _dead(data, config),
            0.0,
            True,
        ),
        Suspect(
            "nonrecursive",
            "the name server in resolv.conf does not recurse (answers REFUSED)",
            _rule(data, {"name": domain, "type": "*", "rcode": "REFUSED"}),
            0.0,
            True,
        ),
        Suspect(
            "servfail",
            f"the ANY query for {domain} gets SERVFAIL",
            _rule(data, {"name": domain, "type": "ANY", "rcode": "SERVFAIL"}),
            0.0,
            False,
        ),
        Suspect(
            "oversize",
            f"the ANY answer for {domain} is over 512 bytes (netqmail without qmail-103)",
            _rule(data, {"name": domain, "type": "ANY", "pad_to": 600}),
            0.0,
            False,
        ),
    ]


@dataclass(frozen=True)
class Verdict:
    suspect: Suspect
    reproduces: bool
    timing: str  # "fits", "does not fit" or "unknown"
    why: str
    shown: bool = False  # a capture (qmail-sim capture) shows this very failure

    @property
    def score(self) -> int:
        timing = {"fits": 1, "unknown": 0}.get(self.timing, -1)
        return 2 * self.reproduces + timing + self.shown


def rank(
    candidates: Sequence[Suspect],
    observed: Sequence[float],
    run: Runner,
    *,
    resolv_conf_given: bool,
    shown: str | None = None,
) -> list[Verdict]:
    """Each suspect judged: does the simulator log the same line, do the times fit."""
    verdicts = []
    for s in candidates:
        ok, detail = run(s.scenario)
        if not observed:
            timing, why = "unknown", "the log has no times for the attempt"
        else:
            off = [abs(d - s.predicted) for d in observed]
            timing = "fits" if max(off) <= TIME_SLACK else "does not fit"
            took = ", ".join(f"{d:.1f}s" for d in observed)
            why = f"results came {took} after the start; this predicts {s.predicted:.0f}s"
        if not ok:
            why = f"the simulator logs something else ({detail.splitlines()[0][:80]}); {why}"
        if s.resolver and not resolv_conf_given:
            why += "; no --resolv-conf given to check"
        if s.name == shown:
            why += "; the capture shows it"
        verdicts.append(Verdict(s, ok, timing, why, s.name == shown))
    order = {id(v): i for i, v in enumerate(verdicts)}

    def key(v: Verdict) -> tuple[int, bool, int]:
        # between equals, resolv.conf's evidence decides: given, the resolver goes first;
        # not given, it cannot be checked and the domain's own DNS goes first
        return -v.score, v.suspect.resolver != resolv_conf_given, order[id(v)]

    return sorted(verdicts, key=key)
