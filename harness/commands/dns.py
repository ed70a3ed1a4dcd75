"""``qmail-sim dns ZONEFILE --listen 127.0.0.1:5353``: the fake DNS as a real server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

from harness.fakedns import FakeDns, serve
from harness.scenario import ScenarioError, load_text
from harness.scenario.model import DnsSpec

HELP = "serve a zone file as a scripted fake DNS on loopback"
DESCRIPTION = """\
Serve ZONEFILE (zone-file syntax, as dnslib reads it) over UDP and TCP on a
loopback address, with the scenario format's DNS rules (--rules FILE: a YAML
list of rules, as under dns.rules in a scenario). Answers over 512 bytes are
sent truncated with the TC bit over UDP and whole over TCP. Every query is
printed as it arrives. Only loopback addresses (127.0.0.0/8, ::1) are allowed.
"""


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


def load_spec(zonefile: Path, rules: Path | None, host: str) -> DnsSpec:
    zone = zonefile.read_text()
    rules_text = rules.read_text() if rules else "[]"
    indented = "\n".join("    " + line for line in rules_text.splitlines())
    doc = f"name: dns\nsteps: []\ndns:\n  servers: [{host!r}]\n  rules:\n{indented or '    []'}\n"
    scenario = load_text(doc, rules or "<rules>")[0]
    return DnsSpec(zone=zone, servers=(host,), rules=scenario.dns.rules)


async def _serve(spec: DnsSpec, host: str, port: int) -> None:
    start = time.time()
    dns = FakeDns(spec, time.time, start)
    udp, tcp, port = await serve(dns, host, port)
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


def run(args: argparse.Namespace) -> int:
    host, _, port_text = args.listen.rpartition(":")
    host = host.strip("[]")
    if not _loopback(host) or not port_text.isdigit():
        print(
            f"qmail-sim dns: --listen must be a loopback IP:PORT, not {args.listen}",
            file=sys.stderr,
        )
        return 2
    try:
        spec = load_spec(args.zonefile, args.rules, host)
    except (OSError, ScenarioError) as exc:
        print(f"qmail-sim dns: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(spec, host, int(port_text)))
    return 0
