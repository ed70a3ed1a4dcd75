"""Scenarios per second for the bundled suite on the simulator.

Four figures: in one process (the runner called directly, imports warm),
in two processes (``-n 2``: each the same, on one half of the suite as
``qmail-sim run --shard K/2`` picks it, started together once both are warm),
through ``pytest`` in one process, and through ``pytest -n 2`` (pytest-xdist
over two cores). Each pytest figure includes interpreter start-up and
collection, which is what a CI job pays. The in-process figures also give
scenarios per CPU-second of the processes that run them (not of the warm
per-user workers and the programs they start, run as root): the fair figure
on a busy machine. Run as root, one more in-process figure is taken in a
process run as a user (``--user``, qmaild by default): a one-user run, where
deliveries need no worker and no queue service, as on a laptop.

The in-process figure is the reference, measured in the same run: the same
scenarios through the same runner with no pytest, no interpreter start-up and
no collection, i.e. the floor for running them at all. Printed ratios:
pytest/in-process and pytest -n 2/in-process (what pytest and xdist cost, or
with two idle cores gain, over that floor), and pytest -n 2/pytest (xdist's
speed-up), and in-process -n 2/in-process (how linear the simulator is in
processes: 2.00 on two idle cores). The rates are wall-clock rates; another
process on the machine (tests running at the same time) makes them noisy.

    python benchmarks/suite.py [--rounds N] [PATHS...]
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.runner import load_all, run_all

#: Issue 12: the bundled suite at this many scenarios per second on one core.
#: Run as root, each local delivery goes to a warm worker process of its user
#: (server.local.asuser), one at a time: still one core, but that worker's CPU
#: is not in the per-CPU-second figure, which counts this process only.
GOAL = 100.0

#: The checkout's suite. benchmarks/ lives in a checkout, and the pytest plugin
#: collects scenarios only there (not from the copy installed in site-packages).
CHECKOUT_SUITE = Path(__file__).resolve().parent.parent / "scenarios"


def in_process(paths: list[Path], rounds: int) -> tuple[int, float, float, int]:
    """Runs, wall seconds, CPU seconds (the fair figure on a busy machine), failures."""
    scenarios, errors = load_all(paths)
    run_all(scenarios[:1])  # warm the imports
    started, cpu = time.perf_counter(), time.process_time()
    failed = 0
    for _ in range(rounds):
        failed += sum(not r.ok for r in run_all(scenarios))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(scenarios) * rounds, wall, cpu, failed + len(errors)


def child(paths: list[Path], rounds: int, shard: str) -> int:
    """One process of the -n figure: load and warm up, say ``ready``, wait for a
    line on stdin, run its shard, say ``done RUNS CPU FAILED``."""
    from harness.shard import parse_shard, scenario_key

    scenarios, errors = load_all(paths)
    mine = parse_shard(shard).pick(scenarios, lambda s: scenario_key(s.file, s.name))
    run_all(mine[:1])  # warm the imports and this process's worker
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    failed = sum(not r.ok for _ in range(rounds) for r in run_all(mine))
    cpu = time.process_time() - cpu
    print(f"done {len(mine) * rounds} {cpu} {failed + len(errors)}", flush=True)
    return 0


class NotStarted(Exception):
    """A measuring process exited before it was warm (the user cannot read the checkout)."""


def in_processes(
    paths: list[Path], rounds: int, n: int, user: str | None = None
) -> tuple[int, float, float, int]:
    """As :func:`in_process`, over ``n`` processes each running one shard of
    ``n`` (as ``user`` when given), timed from the moment all are warm to the
    end of the last."""
    as_user: dict[str, Any] = {}
    if user is not None:
        pw = pwd.getpwnam(user)
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--rounds", str(rounds), "--child", f"{k}/{n}"]
            + [str(p) for p in paths],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            **as_user,
        )
        for k in range(1, n + 1)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            for other in procs:
                other.kill()
                other.wait()
            raise NotStarted(f"a process of {n} did not start: exit {proc.returncode}")
    started = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    runs, cpu, failed = 0, 0.0, 0
    for proc in procs:
        out, _ = proc.communicate()
        _done, count, seconds, bad = out.split()
        runs, cpu, failed = runs + int(count), cpu + float(seconds), failed + int(bad)
    return runs, time.perf_counter() - started, cpu, failed


def with_pytest(paths: list[Path], workers: int | None) -> tuple[float, str]:
    # pytest-benchmark (if installed) warns under xdist, and warnings are errors here
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:benchmark",
        *map(str, paths),
    ]
    if workers:
        cmd += ["-n", str(workers)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    return time.perf_counter() - started, lines[-1] if lines else proc.stderr.strip()


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--user",
        default="qmaild" if _exists("qmaild") else "",
        help="run as root, also measure in one process run as this user, where "
        "deliveries need no worker (default: qmaild when it exists; '' for none)",
    )
    parser.add_argument("--child", metavar="K/N", help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = args.paths or [CHECKOUT_SUITE]
    if args.child:
        return child(paths, args.rounds, args.child)
    n, seconds, cpu, failed = in_process(paths, args.rounds)
    print(
        f"in-process:        {n} scenario runs in {seconds:.2f}s = {n / seconds:7.1f}/s "
        f"({n / cpu:.1f} per CPU-second; {failed} not passing)"
    )
    rate = n / seconds
    print(f"goal (issue 12):   {GOAL:7.1f}/s on one core; ratio in-process/goal: {rate / GOAL:.2f}")
    reference = n / seconds
    count = n // args.rounds
    status = 0 if failed == 0 else 1
    n2, seconds2, cpu2, failed2 = in_processes(paths, args.rounds, 2)
    print(
        f"in-process -n 2:   {n2} scenario runs in {seconds2:.2f}s = {n2 / seconds2:7.1f}/s "
        f"({n2 / cpu2:.1f} per CPU-second; {failed2} not passing)"
    )
    print(f"ratio in-process -n 2/in-process: {n2 / seconds2 / reference:.2f} (2.00 is linear)")
    if failed2 or n2 != n:
        status = 1
    if args.user and os.geteuid() == 0:
        try:
            nu, secondsu, cpuu, failedu = in_processes(paths, args.rounds, 1, args.user)
        except NotStarted as exc:
            print(f"in-process as {args.user}: not measured ({exc})")
            status = 1
        else:
            print(
                f"in-process as {args.user}: {nu} scenario runs in {secondsu:.2f}s = "
                f"{nu / secondsu:7.1f}/s ({nu / cpuu:.1f} per CPU-second; {failedu} not passing)"
            )
            print(f"ratio as {args.user}/as root: {nu / secondsu / reference:.2f}")
            if failedu or nu != n:
                status = 1
    rates: dict[int | None, float] = {}
    for workers in (None, 2):
        seconds, tail = with_pytest(paths, workers)
        label = f"pytest -n {workers}:" if workers else "pytest (1 proc):"
        passed = re.search(r"(\d+) passed", tail)
        if passed is None or int(passed.group(1)) != count:
            # A rate over scenarios that did not run would be a made-up figure.
            print(f"{label:18} expected {count} passing scenarios, pytest said: {tail}")
            status = 1
            continue
        rates[workers] = count / seconds
        print(
            f"{label:18} {count} scenarios in {seconds:.2f}s = {rates[workers]:7.1f}/s "
            f"(with start-up; {tail})"
        )
    if None in rates:
        print(f"ratio pytest/in-process:        {rates[None] / reference:.2f}")
    if 2 in rates:
        print(f"ratio pytest -n 2/in-process:   {rates[2] / reference:.2f}")
    if None in rates and 2 in rates:
        print(f"ratio pytest -n 2/pytest:       {rates[2] / rates[None]:.2f} (xdist speed-up)")
    return status


if __name__ == "__main__":
    sys.exit(main())
