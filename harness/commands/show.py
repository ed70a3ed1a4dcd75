"""``qmail-sim show SCENARIO``: run a scenario and print each message's timeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.report import details, result_line
from harness.runner import run_scenario
from harness.scenario import ScenarioError, load_file
from harness.targets.sim import SimTarget
from harness.timeline import as_html, as_text, build

HELP = "print a timeline of each message in a scenario"
DESCRIPTION = """\
Run the scenario(s) in FILE on the simulator and print, for every message
qmail-send handled, when it was queued, each delivery attempt with its
result over virtual time, bounces, and when it left the queue. With --html,
also draw the timelines into an HTML file.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="SCENARIO")
    parser.add_argument("--name", help="only the scenario with this name (in a file of several)")
    parser.add_argument("--html", type=Path, metavar="FILE", help="write the timeline as HTML")


def run(args: argparse.Namespace) -> int:
    try:
        scenarios = load_file(args.file)
    except ScenarioError as exc:
        print(f"qmail-sim show: {exc}", file=sys.stderr)
        return 2
    if args.name:
        scenarios = [s for s in scenarios if s.name == args.name]
    pages = []
    ok = True
    for sc in scenarios:
        target = SimTarget()
        result = run_scenario(sc, target=target, seed=None)
        ok = ok and result.ok
        print(result_line(result))
        for line in details(result):
            print(line)
        timeline = build(target.timed_log)
        for line in as_text(timeline):
            print(f"  {line}".rstrip())
        pages.append(as_html(sc.name, timeline))
    if args.html:
        args.html.write_text("".join(pages))
    return 0 if ok else 1
