"""``qmail-sim reproduce``: a deferral line from a qmail log → a scenario, run and fixed.

Parses ``--log`` lines (:mod:`harness.logparse`), the DNS capture (``--dig``,
:mod:`harness.digparse`, or ``--zone``), builds the scenario
(:func:`harness.reproduce.build`), writes it with ``-o``, and with ``--run``
plays it on the simulator, then plays each fix of
:data:`harness.reproduce.FIXES` and says which ones deliver the message.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from harness import capture as captured
from harness import digparse, logparse, maillog
from harness.reproduce import Reproduction, build
from harness.reproduce_fixes import try_fixes
from harness.reproduce_whole import enrich

HELP = "build a scenario that reproduces a deferral from a qmail log"
DESCRIPTION = """\
From a qmail-send log line (e.g. '@4000… delivery 12: deferral:
CNAME_lookup_failed_temporarily._(#4.4.3)/') and the DNS answers captured for
the domain (dig output with --dig, several runs in one file are fine, or a
zone file with --zone), build a scenario: control/me, a message to a recipient
at the domain, the fake DNS zone and rules for the observed condition (SERVFAIL,
no answer, an answer over 512 bytes, NXDOMAIN), fake peers for the mail
exchangers (their addresses moved to 127.0.2.N). Give --log more than once to
add the 'starting delivery N: msg M to remote ADDR' line: the recipient is
taken from it.

With --run, play it on the simulator and check the log shows the same
deferral, then try each change (the qmail-103 patch, no oversize answers, ANY
answered properly or minimally, a healthy DNS, accepting peers) and say which
makes the message deliver.

From whole logs instead (--log-file, repeatable: syslog via splogger,
multilog, plain qmail-send output, gzip'd or not; --msg N or --rcpt ADDR
picks the message), the scenario replays the message's whole history at
qmail-send's retry times. For a #4.4.3 no capture explains, the suspects (a
dead, refusing or non-recursive name server, SERVFAIL, an oversize ANY
answer) are ranked by whether the simulator logs the same line and whether
the log's times fit --resolv-conf FILE. --capture FILE reads what
'qmail-sim capture' wrote on the server; --control DIR (or --home DIR, or a
file of qmail-showctl output) brings in the delivery control files.

Exit status: 0 when written (and with --run, reproduced), 1 when --run did
not reproduce the line, 2 for bad input.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="LINE",
        help="a qmail-send log line (repeatable; the deferral/failure one is reproduced)",
    )
    capture = parser.add_mutually_exclusive_group()
    capture.add_argument("--dig", type=Path, metavar="FILE", help="dig output for the domain")
    capture.add_argument("--zone", type=Path, metavar="FILE", help="a zone file for the domain")
    capture.add_argument(
        "--capture", type=Path, metavar="FILE", help="what 'qmail-sim capture' wrote on the server"
    )
    parser.add_argument("--domain", metavar="D", help="the recipient's domain")
    parser.add_argument("--rcpt", metavar="ADDR", help="the recipient (default postmaster@D)")
    parser.add_argument(
        "--log-file",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a whole qmail-send log: syslog, multilog, plain, gzip'd (repeatable, oldest first)",
    )
    parser.add_argument("--msg", type=int, metavar="N", help="the message (inode number) to take")
    parser.add_argument("--resolv-conf", type=Path, metavar="FILE", help="the server's resolv.conf")
    parser.add_argument(
        "--control",
        type=Path,
        metavar="DIR",
        help="the server's control/ (or a file of qmail-showctl's output)",
    )
    parser.add_argument("--home", type=Path, metavar="DIR", help="the server's qmail home")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the scenario")
    parser.add_argument("--run", action="store_true", help="run it and try the fixes")


class BadInput(Exception):
    pass


def _lines(texts: list[str]) -> tuple[logparse.LogLine, str | None]:
    result: logparse.LogLine | None = None
    rcpt: str | None = None
    for text in texts:
        for raw in text.splitlines() or [text]:
            if not raw.strip():
                continue
            try:
                line = logparse.parse(raw)
            except logparse.LogLineError as exc:
                raise BadInput(str(exc)) from None
            if line.kind == "starting":
                rcpt = line.text
            elif line.kind in ("deferral", "failure") and result is None:
                result = line
    if result is None:
        raise BadInput("no 'delivery N: deferral:' or 'failure:' line among --log")
    return result, rcpt


def _domain(args: argparse.Namespace, rcpt: str | None, dig: list[digparse.DigAnswer]) -> str:
    if args.domain:
        return str(args.domain)
    if rcpt and "@" in rcpt:
        return rcpt.rpartition("@")[2]
    if dig and dig[0].qname:
        return dig[0].qname
    raise BadInput("say which domain: --domain D, --rcpt ADDR or a dig capture")


def _from_logs(args: argparse.Namespace) -> tuple[logparse.LogLine, str, maillog.History]:
    try:
        h = maillog.load(args.log_file, msg=args.msg, rcpt=args.rcpt)
    except (OSError, maillog.HistoryError) as exc:
        raise BadInput(str(exc)) from None
    first = h.first_problem
    kind: Any = first.result
    return logparse.LogLine(kind=kind, delivery=first.delivery, text=first.report), h.recipient, h


def prepare(args: argparse.Namespace) -> Reproduction:
    rcpt: str | None
    if args.log_file:
        line, rcpt, _ = _from_logs(args)
    elif args.log:
        line, rcpt = _lines(args.log)
    else:
        raise BadInput("give --log LINE or --log-file FILE")
    rcpt = args.rcpt or rcpt
    dig: list[digparse.DigAnswer] = []
    zone: str | None = None
    try:
        if args.dig:
            dig = digparse.parse(args.dig.read_text(encoding="utf-8"))
        if args.zone:
            zone = args.zone.read_text(encoding="utf-8")
        if args.capture:
            dig = captured.dig_answers(captured.load(args.capture))
    except (OSError, UnicodeError, ValueError, KeyError, digparse.DigParseError) as exc:
        raise BadInput(str(exc)) from None
    domain = _domain(args, rcpt, dig)
    try:
        return build(line, domain=domain, recipient=rcpt, dig=dig, zone_text=zone)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def dump(data: dict[str, Any]) -> str:
    """YAML the loader reads back, block scalars for the zone and the message."""

    class _Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, text)
    out: str = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return out


def run_data(data: dict[str, Any]) -> tuple[bool, str]:
    """Play scenario data on the simulator: (passed, why not)."""
    from harness.runner import run_scenario
    from harness.scenario import ScenarioError, load_text

    try:
        (scenario,) = load_text(dump(data), Path.cwd() / "reproduce.yaml")
    except ScenarioError as exc:  # a condition our scenario format cannot express
        return False, f"the scenario does not load: {exc}"
    result = run_scenario(scenario, target="sim")
    return result.ok, result.message


def report(rep: Reproduction) -> list[str]:
    lines = [f"domain {rep.domain}, recipient {rep.recipient}", f"expecting: {rep.expect_text}"]
    lines += [f"  {note}" for note in rep.notes]
    lines += [f"  address {real} is played by {fake}" for real, fake in rep.addresses.items()]
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        rep = prepare(args)
    except BadInput as exc:
        print(f"qmail-sim reproduce: {exc}", file=sys.stderr)
        return 2
    history = _from_logs(args)[2] if args.log_file else None
    control = args.control or (args.home / "control" if args.home else None)
    cap = captured.load(args.capture) if args.capture else None
    if history is not None or args.resolv_conf or control or cap:
        try:
            rep, lines = enrich(
                rep,
                history=history,
                resolv_conf=args.resolv_conf,
                control=control,
                run=run_data,
                capture=cap,
            )
        except OSError as exc:
            print(f"qmail-sim reproduce: {exc}", file=sys.stderr)
            return 2
        rep.notes.extend(lines)
    text = dump(rep.scenario)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    elif not args.run:
        sys.stdout.write(text)
    print("\n".join(report(rep)), file=sys.stdout if args.output or args.run else sys.stderr)
    if not args.run:
        return 0
    ok, message = run_data(rep.scenario)
    if not ok:
        print(f"NOT reproduced: {message}")
        return 1
    print("reproduced: the simulator logs the same line")
    trials = try_fixes(rep.scenario, run_data)
    for t in trials:
        print(f"  {'DELIVERS' if t.delivered else 'still stuck':12} with {t.name}: {t.meaning}")
    if not any(t.delivered for t in trials):
        print("  none of the changes tried makes it deliver")
    return 0
