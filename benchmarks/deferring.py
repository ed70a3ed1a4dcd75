"""One deferring pass over a big queue: real netqmail-1.06 against ours.

    python benchmarks/deferring.py --reference-qmail DIR [--messages 100000] [--repeat 1]

Root only (a private mount namespace, qmail's uids), as ``delivery.py
--reference-qmail`` (whose private copy of DIR, ``reference_qmail.py``, this
uses: DIR is never written). Each side gets the same ``control/`` and a
``users/assign`` whose one wildcard line sends every local address to a user
whose home directory does not exist: the deferral a missing (unmounted)
home gives, "Unable to switch to HOME: file does not exist. (#4.3.0)", made
by qmail-local itself, so each deferral costs what a real one does
(qmail-lspawn's fork, qmail-local as the user, its report to qmail-send).

``--messages`` messages are written straight into each queue as qmail-send's
todo_do leaves them (``memory_send.build_queue``: ``mess/``, ``info/`` with
the birth as mtime, ``local/`` due within the last hour; the owners qmail
gives them), so both sides start from the same queue. Then qmail-send starts
(real: ``qmail-start ./Maildir/`` as root; ours: ``qmail-sim serve --send``
on a split home) and the clock runs until its log holds a deferral for every
message: pqstart's reading of the queue, the scheduling, the N deliveries at
concurrencylocal and qmail-send's bookkeeping of each. The next retries
(birth + (sqrt(age) + 10)^2, qmail-send.c nextretry) all lie after the pass.
Runs alternate between the sides; printed: each run's seconds, the medians,
and ours/real in speed (above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from delivery_reference import start_send
from memory_send import build_queue
from reference_qmail import (
    add_journaled_option,
    clean_queue,
    ids,
    load_average,
    median,
    side_by_side,
    stop_group,
)

#: The one user every local address goes to, and the home it does not have.
UID = 4900
SIDES = ("real", "ours")


class DeferralCounter:
    """qmail-send's log, drained in a thread; counts deferrals, keeps the first
    line that is anything else a delivery can end with."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.deferrals = 0
        self.first: str | None = None
        self.trouble: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.stream:
            line = raw.decode(errors="replace").rstrip()
            if ": deferral: " in line:
                self.deferrals += 1
                self.first = self.first or line
            elif self.trouble is None and (": success: " in line or ": failure: " in line):
                self.trouble = line


def assign_to_nowhere(home: Path, nowhere: Path) -> None:
    """users/assign: every address (the ``+`` wildcard, empty prefix) to uid
    UID with home ``nowhere``; users/cdb from the home's own qmail-newu."""
    (home / "users" / "assign").write_text(f"+:gone:{UID}:{UID}:{nowhere}:-::\n.\n")
    subprocess.run([str(home / "bin" / "qmail-newu")], check=True, timeout=120)


def fill_queue(home: Path, messages: int) -> None:
    """The due backlog, owned as qmail-queue and qmail-send leave it."""
    build_queue(home, messages, "local", int(time.time()))
    qmailq, qmail = ids("qmailq", "qmail")
    qmails, _ = ids("qmails", "qmail")
    queue = home / "queue"
    for sub, owner, mode in (("mess", qmailq, 0o644), ("info", qmails, 0o600),
                             ("local", qmails, 0o600)):  # fmt: skip
        for split in os.scandir(queue / sub):
            for entry in os.scandir(split.path):
                os.chown(entry.path, owner, qmail)
                os.chmod(entry.path, mode)


def deferring_pass(side: str, home: Path, messages: int) -> tuple[float, str]:
    """Seconds from qmail-send's start until every message has deferred once."""
    clean_queue(home)
    fill_queue(home, messages)
    started = time.monotonic()
    proc = start_send(side, home)
    try:
        assert proc.stdout is not None
        log = DeferralCounter(proc.stdout)
        deadline = started + 300 + messages / 20
        while log.deferrals < messages:
            if log.trouble is not None:
                raise SystemExit(f"{side}: not a deferral: {log.trouble}")
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{side}: {log.deferrals} of {messages} deferred in time")
            time.sleep(0.02)
        elapsed = time.monotonic() - started
    finally:
        stop_group(proc)
    clean_queue(home)
    return elapsed, log.first or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-qmail", type=Path, required=True, metavar="DIR")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="where the scratch homes go (default: TMPDIR)")
    add_journaled_option(parser)
    args = parser.parse_args()
    with side_by_side(args) as (reference, scratch, homes):
        for home in homes.values():
            assign_to_nowhere(home, scratch / "nowhere")
        print(
            f"one deferring pass over {args.messages} queued messages (a missing home "
            f"directory): real netqmail ({reference}, a private copy) vs qmail-sim serve "
            f"--send (a split home); {os.cpu_count()} CPUs, {load_average()}"
        )
        seconds: dict[str, list[float]] = {side: [] for side in SIDES}
        for round_ in range(args.repeat):
            order = SIDES if round_ % 2 == 0 else SIDES[::-1]
            for side in order:
                elapsed, first = deferring_pass(side, homes[side], args.messages)
                seconds[side].append(elapsed)
                print(f"  run {round_ + 1}, {side}: {elapsed:.2f} s ({load_average()})")
                if round_ == 0:
                    print(f"    {first}")
        real_s, ours_s = median(seconds["real"]), median(seconds["ours"])
        print(f"median: real {real_s:.2f} s, qmail-sim {ours_s:.2f} s; "
                  f"ours/real in speed {real_s / ours_s:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
