"""``qmail-sim run [PATHS…]``: run scenario files and report, with an exit status for CI."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.outcome import Result
from harness.report import breakdown, details, result_line, summary, write_junit
from harness.runner import bundled_suite, load_all, run_all
from harness.scenario.values import parse_instant
from harness.selection import BadExpression, select
from harness.shard import Shard, parse_shard, scenario_key

HELP = "run scenario files (default: the bundled suite) against a target"
DESCRIPTION = """\
Run scenario files (YAML; see docs/scenarios.md) against a target and print a
PASS/FAIL line per scenario; for a failure, the step, expected and actual lines
side by side and the transcript. PATHS may be files or directories (searched
for *.yaml); without PATHS the bundled suite runs.

Exit status: 0 when every scenario passed (or failed as marked xfail), 1 when
any failed, 2 for bad arguments, 5 when no scenario was selected (an empty
directory, or -k/--tag matching nothing), as pytest does.
"""

#: pytest's exit status when it collected no tests (pytest.ExitCode.NO_TESTS_COLLECTED).
NOTHING_SELECTED = 5


def target_name(text: str) -> str:
    """sim, live or qmail:DIR (harness/targets/live.py, qmail.py)."""
    if text in ("sim", "live") or (text.startswith("qmail:") and len(text) > len("qmail:")):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not sim, live or qmail:DIR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATHS",
        help="scenario files or directories (default: the bundled suite)",
    )
    parser.add_argument(
        "-k",
        metavar="EXPR",
        help="only scenarios whose name/file/tags match EXPR (words with and/or/not, as pytest -k)",
    )
    parser.add_argument(
        "--tag",
        action="append",
        metavar="T",
        help="only scenarios with tag T (repeatable: any of them)",
    )
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML to FILE")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep each scenario's work directory for inspection: its qmail home, the "
        "users' homes, qmail-send.log and dns-queries.txt",
    )
    parser.add_argument(
        "--target",
        default="sim",
        type=target_name,
        metavar="TARGET",
        help="what to run against: sim (default, the simulator), live (our programs as "
        "processes on loopback), qmail:DIR (a real qmail home)",
    )
    parser.add_argument("--seed", type=int, metavar="N", help="override every scenario's seed")
    parser.add_argument(
        "--clock-start",
        type=instant,
        metavar="WHEN",
        help="start each scenario's clock at WHEN (ISO 8601 with a zone, e.g. "
        "2026-12-01T10:00:00Z, or epoch seconds), to try date-dependent expectations "
        "on any day; a scenario's own clock_start wins. sim and live honour it; "
        "qmail:DIR ignores it (a real qmail reads the real clock). "
        "Default: 1700000000 (2023-11-14 22:13:20 UTC) on sim, the real time live",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    parser.add_argument(
        "--shard",
        type=shard_arg,
        metavar="K/N",
        help="run only shard K of N: a stable hash of each scenario's file and name, the "
        "same on every machine, so N CI jobs given 1/N..N/N run each scenario once",
    )


def shard_arg(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def instant(text: str) -> float:
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _progress(done: int, total: int, name: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name[:40]:40}")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    paths = args.paths or [bundled_suite()]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"qmail-sim run: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2
    # files are named as given; the bundled suite's as scenarios/…, wherever it is installed
    base = None if args.paths else paths[0].parent
    scenarios, results = load_all(paths, relative_to=base)
    try:
        scenarios = select(scenarios, args.k, args.tag)
    except BadExpression as exc:
        print(f"qmail-sim run: {exc}", file=sys.stderr)
        return 2
    if args.shard is not None:
        scenarios = args.shard.pick(scenarios, lambda s: scenario_key(s.file, s.name))
        results = args.shard.pick(results, lambda r: scenario_key(r.file, r.name))
    for r in results:
        _show(r, args.quiet)
    total = len(scenarios)
    done = [0]

    def on_result(r: Result) -> None:
        done[0] += 1
        _progress(done[0], total, r.name)
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")
        _show(r, args.quiet)

    results += run_all(
        scenarios,
        target=args.target,
        keep=args.keep,
        seed=args.seed,
        on_result=on_result,
        clock_start=args.clock_start,
    )
    seconds = time.monotonic() - started
    if results and not args.quiet:
        print(breakdown(results))
    print(summary(results, seconds))
    if args.junit:
        write_junit(results, args.junit, seconds)
    if not results:  # a wrong path or a -k typo in CI must not pass green
        where = " ".join(str(p) for p in paths)
        chosen = " matched -k/--tag" if args.k or args.tag else " found"
        print(f"qmail-sim run: no scenarios{chosen} in {where}", file=sys.stderr)
        return NOTHING_SELECTED
    return 0 if all(r.ok for r in results) else 1


def _show(r: Result, quiet: bool) -> None:
    if quiet and r.ok and r.workdir is None:
        return
    print(result_line(r))
    for line in details(r):
        print(line)
    sys.stdout.flush()
