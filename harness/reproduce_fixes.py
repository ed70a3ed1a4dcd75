"""The changes ``qmail-sim reproduce --run`` tries on a reproduced deferral.

:data:`FIXES` are the switches and changes: each is a function from scenario
data (as :func:`harness.reproduce.build` makes it) to changed scenario data,
or None when it does not apply. :func:`try_fixes` runs each one, through a
runner it is given, with the last expectation replaced by "the message was
delivered" (:func:`delivering`); when none delivers alone, each pair.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.reproduce import PEER_NET, _complete_zone

Data = dict[str, Any]

Fix = Callable[[Data], Data | None]


def _rules(data: Data) -> list[Data]:
    rules: list[Data] = data.get("dns", {}).get("rules", [])
    return rules


def _with_rules(data: Data, keep: Callable[[Data], Data | None]) -> Data | None:
    """``data`` with each rule passed through ``keep`` (None drops it); None if unchanged."""
    old = _rules(data)
    new = [r2 for r in old if (r2 := keep(dict(r))) is not None]
    if new == old:
        return None
    out = copy.deepcopy(data)
    out["dns"]["rules"] = new
    return out


def patch_103(data: Data) -> Data | None:
    # the patch changes how dns.c reads answers; without DNS rules there is nothing to change
    if "qmail-103" in data.get("patches", []) or not _rules(data):
        return None
    out = copy.deepcopy(data)
    out["patches"] = [*data.get("patches", []), "qmail-103"]
    return out


def no_padding(data: Data) -> Data | None:
    def keep(rule: Data) -> Data | None:
        rule.pop("pad_to", None)
        return rule if set(rule) - {"name", "type"} else None

    return _with_rules(data, keep)


def any_answered(data: Data) -> Data | None:
    return _with_rules(data, lambda r: None if r.get("type") == "ANY" else r)


def any_minimal(data: Data) -> Data | None:
    """RFC 8482: the server answers ANY with one HINFO record instead of failing."""

    def keep(rule: Data) -> Data | None:
        if rule.get("type") != "ANY" or rule.get("minimal_any"):
            return rule
        return {"name": rule["name"], "type": "ANY", "minimal_any": True}

    return _with_rules(data, keep)


def dns_healthy(data: Data) -> Data | None:
    return _with_rules(data, lambda r: None)


def working_nameserver(data: Data) -> Data | None:
    """resolv.conf names a recursive server that answers (the fake DNS itself)."""
    dns: Data = data.get("dns", {})
    refusing = [r for r in dns.get("rules", []) if r.get("rcode") == "REFUSED"]
    if dns.get("resolv_conf") is None and not refusing:
        return None
    out = copy.deepcopy(data)
    out["dns"].pop("resolv_conf", None)
    out["dns"]["rules"] = [r for r in dns.get("rules", []) if r not in refusing]
    return out


def _looping(zone: list[str]) -> set[str]:
    """Owners of CNAME records that lead back to themselves."""
    target = {w[0].lower(): w[4].lower() for w in map(str.split, zone) if w[3] == "CNAME"}
    looping = set()
    for start in target:
        seen, name = {start}, target[start]
        while name in target and name not in seen:
            seen.add(name)
            name = target[name]
        if name in seen:
            looping.add(start)
    return looping


def cname_unlooped(data: Data) -> Data | None:
    """The CNAME loop broken: the domain gets an MX of its own (and a peer to take it)."""
    zone = [line for line in data["dns"]["zone"].splitlines() if line.split()]
    looping = _looping(zone)
    if not looping:
        return None
    kept = [line for line in zone if line.split()[0].lower() not in looping]
    domain = data["steps"][0]["inject"]["args"][0].rpartition("@")[2].lower()
    _complete_zone(kept, domain, [])
    out = copy.deepcopy(data)
    out["dns"]["zone"] = "\n".join(kept) + "\n"
    for line in kept:
        words = line.split()
        if words[3] == "A" and words[4].startswith(PEER_NET):
            out["peers"].setdefault(words[4], {"accept": "all"})
    return out


def peers_accept(data: Data) -> Data | None:
    peers: Data = data.get("peers", {})
    if all(p == {"accept": "all"} for p in peers.values()):
        return None
    out = copy.deepcopy(data)
    out["peers"] = {ip: {"accept": "all"} for ip in peers}
    return out


#: (name, what it means, change) in the order they are tried and reported.
FIXES: list[tuple[str, str, Fix]] = [
    ("qmail-103", "the qmail-103 patch (dns.c reads answers over 512 bytes)", patch_103),
    ("no-padding", "the DNS answers no longer over 512 bytes", no_padding),
    ("any-answered", "the DNS server answers ANY properly", any_answered),
    ("any-rfc8482", "the DNS server answers ANY minimally (RFC 8482 HINFO)", any_minimal),
    ("resolv-conf", "a working (recursive) name server in resolv.conf", working_nameserver),
    ("cname-unlooped", "the CNAME loop broken (the domain has its own MX)", cname_unlooped),
    ("dns-healthy", "every DNS query answered from the zone", dns_healthy),
    ("peers-accept", "the mail exchangers accept connections", peers_accept),
]

DELIVERED = r"~ ^delivery \d+: success: "


def delivering(data: Data) -> Data:
    """``data`` with its last expect replaced by: the message was delivered."""
    out = copy.deepcopy(data)
    out["name"] = re.sub(r"^reproduce: ", "fixed: ", out["name"])
    # a bounce's local delivery is a success too: no bounce may be left behind
    out["steps"][-1] = {
        "expect": {"log": [DELIVERED], "queue": {"messages": 0}, "bounces": {"count": 0}}
    }
    return out


@dataclass(frozen=True)
class Trial:
    name: str
    meaning: str
    delivered: bool
    detail: str  # the runner's message when it did not deliver


Runner = Callable[[Data], tuple[bool, str]]  # scenario data -> (passed, message)


def try_fixes(data: Data, run: Runner) -> list[Trial]:
    """Each applicable fix of :data:`FIXES`, run to see whether the message goes out;
    when none does alone, each pair of them (two problems at once need both fixed)."""
    applicable = [(n, m, fix, changed) for n, m, fix in FIXES if (changed := fix(data))]
    trials = [Trial(n, m, *run(delivering(changed))) for n, m, _, changed in applicable]
    if any(t.delivered for t in trials):
        return trials
    for i, (name1, _, _, first) in enumerate(applicable):
        for name2, _, fix2, alone in applicable[i + 1 :]:
            both = fix2(first)
            if both is None or both == alone:  # the second undoes or covers the first
                continue
            ok, why = run(delivering(both))
            trials.append(Trial(f"{name1} + {name2}", "both together", ok, why))
    return trials
