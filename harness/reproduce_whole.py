"""What an administrator has, folded into a reproduction: log history, resolv.conf, control/.

``qmail-sim reproduce --log-file … --resolv-conf … --control …`` builds the
one-problem scenario with :func:`harness.reproduce.build`, then here:

1. the installation's control files that matter for delivery are copied in
   (:data:`CONTROL_FILES`; ``--home DIR`` means ``DIR/control``);
2. for a ``#4.4.3`` deferral with no captured DNS failure, the suspects of
   :mod:`harness.reproduce_suspects` are ranked and the best one becomes the
   scenario's condition (resolv.conf read with :mod:`server.dns.resolvconf`);
3. the message's whole history is replayed (:mod:`harness.reproduce_history`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import showctl
from harness.capture import evidence
from harness.maillog import History, describe
from harness.reproduce import Reproduction
from harness.reproduce_history import replay, schedule_notes
from harness.reproduce_suspects import Runner, Verdict, rank, suspects, total_wait
from server.dns.resolvconf import parse as parse_resolvconf
from server.dns.resolver import ResolverConfig

Data = dict[str, Any]

#: control files qmail-send and qmail-remote read for a remote delivery
#: (qmail-control(5)); rcpthosts and the smtpd ones play no part here
CONTROL_FILES = (
    "me",
    "defaultdomain",
    "plusdomain",
    "locals",
    "virtualdomains",
    "smtproutes",
    "timeoutremote",
    "timeoutconnect",
    "queuelifetime",
    "helohost",
    "bouncefrom",
    "bouncehost",
    "doublebouncehost",
    "doublebounceto",
    "concurrencyremote",
    "percenthack",
    "envnoathost",
)


def read_control(directory: Path) -> dict[str, str]:
    """The files of :data:`CONTROL_FILES` that exist in ``directory``.

    ``directory`` may instead be a file holding qmail-showctl's output.
    """
    if directory.is_file():
        return showctl.parse(directory.read_text(encoding="latin-1"))
    found = {}
    for name in CONTROL_FILES:
        path = directory / name
        if path.is_file():
            found[name] = path.read_text(encoding="latin-1")
    return found


def with_control(data: Data, files: dict[str, str]) -> Data:
    control = dict(data["control"])
    control.update(files)
    if "me" in files:
        # our sender stays local: the installation's own name is one of the locals
        me = files["me"].split()[0] if files["me"].split() else ""
        locals_ = files.get("locals", "\n".join(data["control"].get("locals", [])))
        control["locals"] = locals_.rstrip("\n") + f"\n{me}\nexample.org\n"
    return {**data, "control": control}


#: resolv.conf words that change nothing for qmail-remote: dns_init(0) keeps
#: res_query, which never walks the search list (so ndots does not matter
#: either); rotate only changes which dead server is asked first
_NO_EFFECT = ("search", "domain", "ndots:", "rotate")


def resolv_conf_notes(text: str, config: ResolverConfig) -> list[str]:
    servers = ", ".join(h if p == 53 else f"{h}:{p}" for h, p in config.nameservers)
    notes = [
        f"resolv.conf: name servers {servers}; timeout {config.timeout}s, "
        f"attempts {config.attempts}: {total_wait(config)}s until res_query gives up"
    ]
    words = {w for line in text.splitlines() for w in line.split()}
    unused = sorted(w for w in words if w.startswith(_NO_EFFECT))
    if unused:
        notes.append(f"resolv.conf: {' '.join(unused)} change nothing (dns.c calls res_query)")
    return notes


def observed_delays(h: History) -> list[float]:
    if not h.timed:
        return []
    return [
        t.finished - t.started
        for t in h.tries
        if t.finished is not None and t.result in ("deferral", "failure")
    ]


def choose(
    rep: Reproduction,
    h: History | None,
    config: ResolverConfig | None,
    run: Runner,
    shown: str | None = None,
) -> tuple[Reproduction, list[Verdict]]:
    """Rank the suspects for a #4.4.3 the capture does not explain; take the best."""
    captured_failure = any(
        n.startswith("captured:") and "taken into the zone" not in n for n in rep.notes
    )
    code = rep.expect_text.rpartition("(#")[2][:5]
    if code != "4.4.3" or captured_failure:
        return rep, []
    observed = observed_delays(h) if h is not None else []
    # no capture failed: the rules build() made are its guess from the code, one suspect of many
    base = {**rep.scenario, "dns": {k: v for k, v in rep.scenario["dns"].items() if k != "rules"}}
    verdicts = rank(
        suspects(base, rep.domain, config or ResolverConfig()),
        observed,
        run,
        resolv_conf_given=config is not None,
        shown=shown,
    )
    best = verdicts[0].suspect
    notes = [n for n in rep.notes if "guessing" not in n]
    notes.append(f"most likely: {best.name}: {best.meaning}")
    return replace(rep, scenario=best.scenario, notes=notes), verdicts


def enrich(
    rep: Reproduction,
    *,
    history: History | None,
    resolv_conf: Path | None,
    control: Path | None,
    run: Runner,
    capture: Data | None = None,
) -> tuple[Reproduction, list[str]]:
    """The reproduction with all the inputs folded in, and lines for the report."""
    lines: list[str] = []
    if control is not None:
        files = read_control(control)
        rep = replace(rep, scenario=with_control(rep.scenario, files))
        lines.append(f"control files taken from {control}: {', '.join(sorted(files)) or 'none'}")
    config = None
    if resolv_conf is not None:
        text = resolv_conf.read_text(encoding="latin-1")
        config = parse_resolvconf(text)
        lines += resolv_conf_notes(text, config)
    elif capture is not None:
        config = parse_resolvconf(capture["resolv_conf"])
    shown = evidence(capture) if capture is not None else None
    rep, verdicts = choose(rep, history, config, run, shown)
    for i, v in enumerate(verdicts, 1):
        said = "REPRODUCES" if v.reproduces else "does not reproduce"
        lines.append(f"suspect {i}: {v.suspect.name} ({said}, timing {v.timing}): {v.why}")
    if history is not None:
        lines += describe(history) + [f"  {n}" for n in schedule_notes(history)]
        data, notes = replay(rep.scenario, history, rep.expect_text)
        rep = replace(rep, scenario=data)
        lines += [f"  {n}" for n in notes]
    return rep, lines
