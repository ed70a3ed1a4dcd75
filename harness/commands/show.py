"""``qmail-sim show SCENARIO``: run a scenario on the simulator, print each message's story.

The simulator target keeps every qmail-send log line with the virtual time it
was written at (``SimTarget.timed_log``); :func:`harness.timeline.build`
turns them into a timeline per message, printed as text and, with ``--html``,
drawn by :mod:`harness.timeline_html`. ``--log FILE`` reads the pairs from a
real log instead (:mod:`harness.timeline_log`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness import timeline_log
from harness.report import details, result_line
from harness.runner import run_scenario
from harness.scenario import Scenario, ScenarioError, load_file
from harness.targets.sim import SimTarget
from harness.timeline import as_text, build
from harness.timeline_html import Page, render

HELP = "print a timeline of each message in a scenario"
DESCRIPTION = """\
Run the scenario(s) in SCENARIO on the simulator and print, for every message
qmail-send handled, when it was queued, each delivery attempt (recipient,
channel, try number, result and report, when the next try is due), the
bounces it caused and when it left the queue. Times count from the start of
the scenario in virtual time: +0s, +6m41s, +2d1h. The reports are shown as
qmail-send logged them after undoing logsafe(): "_" back to a space, "/" back
to a line break.

With --html FILE, also draw the timelines into one self-contained HTML file
(an SVG lane per message and recipient, marks coloured by result, the
report in each mark's hover title).

With --log FILE instead of a scenario, draw a qmail-send log you already
have: lines stamped by multilog (@4000...), tai64nlocal or splogger (the
seconds.microseconds after the syslog prefix); times count from its first
line.

With --python, print the scenario(s) as a pytest module on the Python API
(harness.api.QmailSim, docs/python.md) instead of running them.

Exit status: 0 when every scenario shown passed (or a log was read), 1 when
one failed (its timeline is still shown), 2 when the file cannot be loaded,
--name matches nothing or the HTML file cannot be written.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, nargs="?", metavar="SCENARIO", help="a scenario file (YAML)"
    )
    parser.add_argument(
        "--log",
        type=Path,
        metavar="FILE",
        help="instead of a scenario, read a qmail-send log (multilog, tai64nlocal or "
        "splogger/syslog lines)",
    )
    parser.add_argument("--name", help="only the scenario with this name (in a file of several)")
    parser.add_argument("--html", type=Path, metavar="FILE", help="also draw the timeline as HTML")
    parser.add_argument("--seed", type=int, metavar="N", help="override the scenario's seed")
    parser.add_argument(
        "--python",
        action="store_true",
        help="print the scenario(s) as pytest tests on the Python API instead of running them",
    )
    parser.add_argument(
        "--brief",
        action="store_true",
        help="fold three or more identical results in a row into first, count, last",
    )


def _load(args: argparse.Namespace) -> list[Scenario] | None:
    try:
        scenarios = load_file(args.file)
    except (ScenarioError, OSError) as exc:
        print(f"qmail-sim show: {exc}", file=sys.stderr)
        return None
    if args.name is not None:
        scenarios = [s for s in scenarios if s.name == args.name]
        if not scenarios:
            print(
                f"qmail-sim show: no scenario named {args.name!r} in {args.file}", file=sys.stderr
            )
            return None
    return scenarios


def _elapsed(target: SimTarget) -> float:
    """Virtual seconds the scenario ran for (0 if it stopped before the clock existed)."""
    clock = getattr(target, "clock", None)
    return 0.0 if clock is None else clock.now() - target.start_time


def _show_log(args: argparse.Namespace) -> int:
    try:
        text = args.log.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        print(f"qmail-sim show: {exc}", file=sys.stderr)
        return 2
    timeline = build(timeline_log.parse(text))
    for line in as_text(timeline, brief=args.brief):
        print(line.rstrip())
    page = Page(title=str(args.log), status="log", timeline=timeline)
    return _write_html(args.html, [page], str(args.log), 0)


def _write_html(path: Path | None, pages: list[Page], source: str, code: int) -> int:
    if path is None:
        return code
    try:
        path.write_text(render(pages, source=source), encoding="utf-8")
    except OSError as exc:
        print(f"qmail-sim show: cannot write {path}: {exc}", file=sys.stderr)
        return 2
    return code


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader went away (``qmail-sim show x.yaml | head``): stop quietly,
        # and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.log is None):
        print("qmail-sim show: give a SCENARIO or --log FILE (one of them)", file=sys.stderr)
        return 2
    if args.log is not None:
        return _show_log(args)
    scenarios = _load(args)
    if scenarios is None:
        return 2
    if args.python:
        from harness.topython import to_python

        print(to_python(scenarios), end="")
        return 0
    pages: list[Page] = []
    ok = True
    for sc in scenarios:
        target = SimTarget()
        result = run_scenario(sc, target=target, seed=args.seed)
        ok = ok and result.ok
        print(result_line(result))
        for line in details(result):
            print(line)
        timeline = build(target.timed_log, until=_elapsed(target))
        for line in as_text(timeline, brief=args.brief):
            print(f"  {line}".rstrip())
        pages.append(Page(title=sc.name, status=result.status, timeline=timeline))
    return _write_html(args.html, pages, str(args.file), 0 if ok else 1)
