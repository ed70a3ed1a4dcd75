"""``receive.py --reference-qmail DIR``: real netqmail against ours, same run, interleaved.

See receive.py's docstring for what each side runs and how DIR stays
untouched (reference_qmail.py). Each run also reads the CPU that each side's
server processes used (proctree.py), and with ``--floor`` each round times
the queue writes alone (receive.queue_floor).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from proctree import tree_cpu
from receive import (
    HOST,
    MESSAGE_SIZE,
    Server,
    free_port,
    qmail_sim,
    queue_floor,
    queued,
    send,
    wait_port,
)
from reference_qmail import (
    FLAT_DIRS,
    ME,
    SPLIT_DIRS,
    clean_queue,
    ids,
    load_average,
    make_ours,
    median,
    print_ratios,
    side_by_side,
    stop_group,
)

#: The tcprules source both sides follow (qmail's FAQ 5.4 for a relay client).
RULES = '127.:allow,RELAYCLIENT=""\n'
SIDES = ("real", "ours")


def make_rules(where: Path) -> Path:
    """RULES compiled by the real tcprules, readable by qmaild."""
    cdb = where / "tcp.smtp.cdb"
    subprocess.run(
        ["tcprules", str(cdb), str(where / "tcp.smtp.tmp")],
        input=RULES.encode(),
        check=True,
        timeout=30,
    )
    os.chmod(cdb, 0o644)
    return cdb


@contextlib.contextmanager
def real_smtpd(reference: Path, rules: Path) -> Iterator[Server]:
    """Real qmail-smtpd under Debian's tcpserver as qmaild:nofiles."""
    uid, gid = ids("qmaild", "nofiles")
    port = free_port()
    cmd = ["tcpserver", "-D", "-H", "-R", "-l", ME, "-x", str(rules)]
    cmd += ["-u", str(uid), "-g", str(gid), HOST, str(port), str(reference / "bin/qmail-smtpd")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port)  # this probe is one qmail-smtpd that sees EOF and queues nothing
        yield Server(port, proc.pid)
    finally:
        stop_group(proc)


def set_aside(home: Path) -> None:
    """Empty ``home``'s queue without freeing an inode: each message file moves
    into ``home/removed`` (same file system; removed with the scratch
    directory at the end; for the real side, the private copy of DIR).

    ext4 without a journal (ext4_new_inode's recently_deleted()) skips every
    inode freed in the last minute or more when it allocates one, reading
    each one's inode block: after unlinking the last run's thousands of
    files, each new file of the next run costs a scan of them, on both
    sides alike, and that kernel time can outweigh a server's own.
    """
    graveyard = home / "removed"
    graveyard.mkdir(exist_ok=True)
    start = len(os.listdir(graveyard))
    names = itertools.count(start)
    queue = home / "queue"
    dirs = [queue / name for name in FLAT_DIRS]
    dirs += [Path(split.path) for name in SPLIT_DIRS for split in os.scandir(queue / name)]
    for directory in dirs:
        for entry in os.scandir(directory):
            os.rename(entry.path, graveyard / str(next(names)))


def run_side(
    side: str,
    home: Path,
    rules: Path,
    messages: int,
    clients: int,
    empty: Callable[[Path], None] = clean_queue,
    warm_up: int = 0,
) -> tuple[float, float]:
    """One run on an emptied queue: (messages per second, CPU milliseconds per
    message of the server's processes), all messages checked into todo/.

    ``warm_up`` messages go first, untimed, and are emptied away: the server
    is then timed as it runs once started (ours: its imports done, its
    connections to the queue service open; real: its binaries and the
    queue's directories in the page cache)."""
    empty(home)
    if side == "real":
        context = real_smtpd(home, rules)
    else:
        context = qmail_sim(home, "--rules", str(rules), "--localname", ME, make=False)
    with context as server:
        if warm_up:
            send(server.port, warm_up, clients)
            if queued(home) != warm_up:
                raise RuntimeError(f"{side}: {queued(home)} of {warm_up} warm-up messages queued")
            empty(home)
        cpu = tree_cpu(server.pid)
        rate = messages / send(server.port, messages, clients)
        time.sleep(0.2)  # tcpserver reaps its last children (their CPU is then its own)
        cpu = (tree_cpu(server.pid) - cpu) * 1000 / messages
    if queued(home) != messages:
        raise RuntimeError(f"{side}: {queued(home)} of {messages} messages in the queue")
    empty(home)
    return rate, cpu


def compare_with_reference(args: argparse.Namespace, client: str) -> int:
    """Real qmail (a private copy of --reference-qmail) against ours, interleaved."""
    repeat = args.repeat or 3
    with side_by_side(args) as (reference, scratch, homes):
        floor_home = make_ours(scratch / "floor")
        rules = make_rules(scratch)
        empty = set_aside if args.set_aside else clean_queue
        for home in (*homes.values(), floor_home):
            empty(home)
        print(
            f"real netqmail ({reference}, a private copy) under tcpserver vs "
            f"qmail-sim serve --smtp (a split home); {args.messages} messages of "
            f"~{MESSAGE_SIZE} bytes, one per connection, via {client}; "
            f"median of {repeat}, runs interleaved, each after {args.warm_up} untimed; "
            f"{os.cpu_count()} CPUs, {load_average()}"
            + ("; queues emptied by moving their files aside" if args.set_aside else ""),
            flush=True,
        )
        rows, floors, cpus = [], [], []
        for clients in args.concurrency:
            rates: dict[str, list[float]] = {side: [] for side in SIDES}
            cpu: dict[str, list[float]] = {side: [] for side in SIDES}
            floor: list[float] = []
            for run in range(repeat):
                for side in SIDES if run % 2 == 0 else SIDES[::-1]:
                    rate, ms = run_side(
                        side, homes[side], rules, args.messages, clients, empty, args.warm_up
                    )
                    rates[side].append(rate)
                    cpu[side].append(ms)
                if args.floor:
                    floor.append(queue_floor(args.messages, clients, floor_home, empty))
                print(
                    f"  {clients} clients, run {run + 1}: real {rates['real'][-1]:.0f}, "
                    f"qmail-sim {rates['ours'][-1]:.0f} msg/s"
                    + (f", floor {floor[-1]:.0f}" if floor else "")
                    + f"; CPU real {cpu['real'][-1]:.2f}, qmail-sim {cpu['ours'][-1]:.2f}"
                    + f" ms/msg ({load_average()})",
                    flush=True,
                )
            rows.append((clients, median(rates["real"]), median(rates["ours"])))
            cpus.append((clients, median(cpu["real"]), median(cpu["ours"])))
            if floor:
                floors.append((clients, median(floor), median(rates["ours"])))
        print_ratios("clients", rows)
        print_cpu(cpus)
        print_floor(floors)
    return 0


def print_cpu(rows: list[tuple[int, float, float]]) -> None:
    """CPU per message of each side's server processes (median), kernel time included."""
    print("CPU of the server's processes per message (user + system, medians)")
    print(f"{'clients':>7}  {'real ms':>8}  {'qmail-sim ms':>12}  {'real/ours':>9}")
    for clients, real, ours in rows:
        print(f"{clients:>7}  {real:8.2f}  {ours:12.2f}  {real / ours:9.2f}")


def print_floor(rows: list[tuple[int, float, float]]) -> None:
    """--floor: the queue writes alone (median), and how close ours comes to them."""
    if not rows:
        return
    print(
        "floor: the same queue writes in qmail-queue's order, in process, one thread "
        "per client, no SMTP"
    )
    print(f"{'clients':>7}  {'floor msg/s':>11}  {'qmail-sim msg/s':>15}  {'ours/floor':>10}")
    for clients, floor, ours in rows:
        print(f"{clients:>7}  {floor:11.0f}  {ours:15.0f}  {ours / floor:10.2f}")
