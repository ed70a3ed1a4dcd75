"""``qmail-sim compare PATHS --reference qmail:DIR``: our server against a reference.

Each scenario is played on ``--ours`` (default: the simulator) and on the
reference (a real qmail home, ``qmail:DIR``, or ``live``) by
:mod:`harness.compare`; a line per scenario says ``identical``, where they
first differ (step, line, ours vs theirs, after normalising pids, inodes,
times and host names), or that a step cannot be compared (qmail's clock
cannot jump). A summary table follows; ``--junit FILE`` writes one testcase
per scenario (a difference is a failure, not comparable is skipped). Exit 0
when nothing differs.
"""

from __future__ import annotations

import argparse
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from harness.commands.run import target_name
from harness.compare import Comparison, compare
from harness.report import relative_file
from harness.runner import bundled_suite, load_all
from harness.scenario.model import Scenario
from harness.selection import BadExpression, select

HELP = "run scenarios on the simulator and on a reference qmail; show where they differ"
DESCRIPTION = """\
Run each scenario on --ours (default: sim) and on --reference (qmail:DIR, a
real qmail home you built, or live) and print per scenario IDENTICAL, the
first difference (step, line, ours vs theirs) or NOT COMPARABLE (a step a
real qmail cannot do, such as advancing the clock), then a table. A scenario
with patches is played on the --patched-reference built with exactly those
patches, when one is given. Pids,
qp/uid/msg numbers, byte counts, dates, Maildir names and host names are
normalised first; qmail-send's log lines are compared as a set per step.
--junit FILE: a difference is a failure, not comparable is skipped. Exit 1
when anything differs. See docs/targets.md.
"""
VERDICT_ORDER = ("identical", "differs", "not comparable", "error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATHS", help="scenario files/dirs")
    parser.add_argument(
        "--reference",
        required=True,
        type=target_name,
        metavar="TARGET",
        help="the reference: qmail:DIR (a real qmail home) or live",
    )
    parser.add_argument(
        "--ours", default="sim", type=target_name, metavar="TARGET", help="default: sim"
    )
    parser.add_argument(
        "--reference-patches",
        type=patch_list,
        default=(),
        metavar="P,P",
        help="the patches the qmail:DIR reference was built with (e.g. date-localtime): "
        "scenarios with exactly these patches are compared, the others are not comparable",
    )
    parser.add_argument(
        "--patched-reference",
        type=patched_reference,
        action="append",
        default=[],
        metavar="P,P=qmail:DIR",
        help="a real qmail built with patches P (repeatable): scenarios with exactly "
        "these patches are compared against it instead of --reference",
    )
    parser.add_argument("-k", metavar="EXPR", help="only scenarios whose name matches")
    parser.add_argument("--tag", action="append", default=[], metavar="T")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")


def patch_list(text: str) -> tuple[str, ...]:
    """``date-localtime,qmail-103``: names from server.programs.PATCHES."""
    from server.programs import PATCHES

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PATCHES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown patch {unknown[0]!r} (known: {', '.join(PATCHES)})"
        )
    return names


def patched_reference(text: str) -> tuple[frozenset[str], str]:
    """``date-localtime=qmail:/var/qmail-dl``: the patches and the home built with them."""
    patches, sep, target = text.partition("=")
    if not sep or not target.startswith("qmail:"):
        raise argparse.ArgumentTypeError(f"{text!r} is not P,P=qmail:DIR")
    return frozenset(patch_list(patches)), target_name(target)


def reference_for(scenario: Scenario, args: argparse.Namespace) -> tuple[str, tuple[str, ...]]:
    """The reference a scenario is played on, and the patches it was built with:
    the ``--patched-reference`` built with exactly the scenario's patches, else
    ``--reference``."""
    for patches, target in args.patched_reference:
        if patches == frozenset(scenario.patches):
            return target, tuple(sorted(patches))
    return args.reference, args.reference_patches


def line_for(c: Comparison) -> str:
    head = f"{c.verdict.upper():15} {c.scenario.id} ({c.seconds * 1000:.0f} ms)"
    if c.verdict == "differs":
        return (
            f"{head}\n    first difference at {c.step}, line {c.line}:\n"
            f"      ours:   {c.ours}\n      theirs: {c.theirs}"
        )
    if c.note:
        return f"{head}\n    {c.note}"
    return head


def table(results: Sequence[Comparison]) -> str:
    counts: Counter[str] = Counter(c.verdict for c in results)
    rows = [f"{'verdict':16}{'scenarios':>10}"]
    rows += [f"{v:16}{counts[v]:>10}" for v in VERDICT_ORDER]
    rows.append(f"{'total':16}{len(results):>10}")
    return "\n".join(rows)


def write_junit(results: Sequence[Comparison], path: Path, seconds: float) -> None:
    counts = Counter(c.verdict for c in results)
    suite = ET.Element(
        "testsuite",
        name="qmail-sim compare",
        tests=str(len(results)),
        failures=str(counts["differs"]),
        errors=str(counts["error"]),
        skipped=str(counts["not comparable"]),
        time=f"{seconds:.3f}",
    )
    for c in results:
        case = ET.SubElement(
            suite, "testcase", classname=relative_file(c.scenario.file), name=c.scenario.name,
            time=f"{c.seconds:.3f}",
        )  # fmt: skip
        text = line_for(c)
        if c.verdict == "differs":
            ET.SubElement(case, "failure", message=f"differs at {c.step}").text = text
        elif c.verdict == "error":
            ET.SubElement(case, "error", message=c.note).text = text
        elif c.verdict == "not comparable":
            ET.SubElement(case, "skipped", message=c.note)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.reference_patches and not args.reference.startswith("qmail:"):
        print("qmail-sim compare: --reference-patches needs --reference qmail:DIR", file=sys.stderr)
        return 2
    paths = args.paths or [bundled_suite()]
    # the bundled suite's files are named scenarios/…, as ``run`` names them
    scenarios, broken = load_all(paths, relative_to=None if args.paths else paths[0].parent)
    for r in broken:
        print(f"ERROR           {r.id}\n    {r.message}")
    try:
        scenarios = select(scenarios, args.k, args.tag)
    except BadExpression as exc:
        print(f"qmail-sim compare: {exc}", file=sys.stderr)
        return 2
    results = []
    for scenario in scenarios:
        reference, patches = reference_for(scenario, args)
        result = compare(scenario, reference, args.ours, reference_patches=patches)
        if reference != args.reference:
            result.note = f"against {reference}" + (f"; {result.note}" if result.note else "")
        results.append(result)
        print(line_for(result), flush=True)
    seconds = time.monotonic() - started
    print(table(results))
    if args.junit:
        write_junit(results, args.junit, seconds)
    bad = broken or any(c.verdict in ("differs", "error") for c in results)
    return 1 if bad else 0
