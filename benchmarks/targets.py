"""Wall time of a scenario suite on the simulator versus the live target.

The same scenarios run once on ``sim`` (cores in-process, virtual clock) and
once on ``live`` (an agent process per scenario in a private network
namespace: real DNS and SMTP servers on loopback, our tcpserver, qmail-send's
daemon on an offset clock). Prints both wall times, scenarios per second and
the ratio live/sim, and how many scenarios passed on each side. Scenarios
tagged ``virtual-time`` (they pin exact virtual dates) can be left out with
``-k "not virtual-time"``.

    python benchmarks/targets.py [-k EXPR] [PATHS...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.runner import bundled_suite, load_all, run_all
from harness.scenario import Scenario
from harness.selection import select


def timed(scenarios: list[Scenario], target: str) -> tuple[float, int]:
    started = time.perf_counter()
    results = run_all(scenarios, target=target)
    return time.perf_counter() - started, sum(r.ok for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("-k", metavar="EXPR", help="only scenarios matching (as qmail-sim run -k)")
    args = parser.parse_args()
    scenarios, errors = load_all(args.paths or [bundled_suite()])
    scenarios = select(scenarios, args.k, [])
    run_all(scenarios[:1])  # warm the imports
    sim_s, sim_ok = timed(scenarios, "sim")
    live_s, live_ok = timed(scenarios, "live")
    n = len(scenarios)
    print(f"scenarios: {n} ({len(errors)} files did not load)")
    print(f"sim:   {sim_s:8.2f} s  {n / sim_s:8.1f} scenarios/s  {sim_ok} ok")
    print(f"live:  {live_s:8.2f} s  {n / live_s:8.1f} scenarios/s  {live_ok} ok")
    print(f"ratio live/sim: {live_s / sim_s:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
