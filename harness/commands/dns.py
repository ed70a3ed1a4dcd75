"""``qmail-sim dns ZONEFILE --listen 127.0.0.1:5353``: the fake DNS as a real server.

Whatever keeps it from starting is one ``qmail-sim dns: …`` line per problem
and an exit code, never a traceback: a zone or rules file that cannot be
read or parsed names its ``file:line`` and exits 2 (bad input, as argparse
does); an address it cannot listen on exits 111, as ``qmail-sim serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.fakedns import FakeDns, ZoneError, parse_zone, serve
from harness.scenario import ScenarioError, load_text
from harness.scenario.model import DnsRule, DnsSpec
from server.strerr import error_str

HELP = "serve a zone file as a scripted fake DNS on loopback"
DESCRIPTION = """\
Serve ZONEFILE (zone-file syntax, as dnslib reads it) over UDP and TCP on a
loopback address, with the scenario format's DNS rules (--rules FILE: a YAML
list of rules, as under dns.rules in a scenario). Answers over 512 bytes are
sent truncated with the TC bit over UDP and whole over TCP. Every query is
printed as it arrives. Only loopback addresses (127.0.0.0/8, ::1) are allowed.
A zone or rules file with a mistake exits 2 naming its file and line; an
address in use exits 111.
"""
EXIT_BAD_INPUT = 2
EXIT_CANNOT_LISTEN = 111

#: The scenario the rules are checked in: the rules file's lines follow it,
#: indented, so an error's line is the scenario's less this many lines.
_SCENARIO_HEAD = "name: dns\nsteps: []\ndns:\n  servers: [{host!r}]\n  rules:\n"


class SpecError(Exception):
    """Why the zone or the rules cannot be served: one ``file:line: …`` text each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class CannotListen(Exception):
    """The address cannot be bound (in use, not local, not allowed)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("zonefile", type=Path, metavar="ZONEFILE")
    parser.add_argument(
        "--listen",
        default="127.0.0.1:5353",
        metavar="IP:PORT",
        help="loopback address and port (default 127.0.0.1:5353; port 0 picks one)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="YAML list of rules (name, type, rcode, timeout, pad_to, tc, …)",
    )


def _loopback(host: str) -> bool:
    return host == "::1" or host.startswith("127.")


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError([f"{path}:{line}: not UTF-8 text"]) from None


def _zone(path: Path) -> str:
    text = _read(path)
    try:
        parse_zone(text)
    except ZoneError as exc:
        raise SpecError([f"{path}:{exc.line}: zone does not parse: {exc.message}"]) from None
    return text


def _rules(path: Path, host: str) -> tuple[DnsRule, ...]:
    text = _read(path)
    lines = text.splitlines()
    if all(not line.strip() or line.lstrip().startswith("#") for line in lines):
        return ()  # YAML reads a file of comments as null, not as an empty list
    head = _SCENARIO_HEAD.format(host=host)
    doc = head + "".join(f"    {line}\n" for line in lines)
    try:
        return load_text(doc, path)[0].dns.rules
    except ScenarioError as exc:
        # A file with several mistakes may report them all (``errors``).
        below = head.count("\n")
        raise SpecError([_in_rules(e, below) for e in getattr(exc, "errors", (exc,))]) from None


def _in_rules(error: ScenarioError, below: int) -> str:
    """An error of the scenario the rules were placed in, told of the rules file."""
    key = error.key.removeprefix("dns.")
    where = f"{error.file}:{max(1, error.line - below)}"
    return f"{where}: {key}: {error.message}" if key else f"{where}: {error.message}"


def load_spec(zonefile: Path, rules: Path | None, host: str) -> DnsSpec:
    """The zone and rules to serve on ``host``; SpecError says what is wrong with them."""
    problems: list[str] = []  # both files' mistakes at once
    zone = ""
    rule_list: tuple[DnsRule, ...] = ()
    try:
        zone = _zone(zonefile)
    except SpecError as exc:
        problems += exc.problems
    try:
        rule_list = _rules(rules, host) if rules is not None else ()
    except SpecError as exc:
        problems += exc.problems
    if problems:
        raise SpecError(problems)
    return DnsSpec(zone=zone, servers=(host,), rules=rule_list)


async def _serve(spec: DnsSpec, host: str, port: int) -> None:
    start = time.time()
    dns = FakeDns(spec, time.time, start)
    try:
        udp, tcp, port = await serve(dns, host, port)
    except OSError as exc:
        raise CannotListen(f"unable to bind {host}:{port}: {error_str(exc.errno)}") from None
    print(
        f"qmail-sim dns: serving {len(dns.zone.records)} names on {host}:{port} (udp+tcp)",
        flush=True,
    )
    shown = 0
    try:
        while True:
            await asyncio.sleep(0.2)
            for q in dns.queries[shown:]:
                print(q, flush=True)
            shown = len(dns.queries)
    finally:
        udp.close()
        tcp.close()


def _complain(*problems: str) -> None:
    for problem in problems:
        print(f"qmail-sim dns: {problem}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    host, _, port_text = args.listen.rpartition(":")
    host = host.strip("[]")
    if not _loopback(host) or not port_text.isdigit() or int(port_text) > 65535:
        _complain(f"--listen must be a loopback IP:PORT, not {args.listen}")
        return EXIT_BAD_INPUT
    try:
        spec = load_spec(args.zonefile, args.rules, host)
    except SpecError as exc:
        _complain(*exc.problems)
        return EXIT_BAD_INPUT
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(spec, host, int(port_text)))
    except CannotListen as exc:
        _complain(str(exc))
        return EXIT_CANNOT_LISTEN
    return 0
