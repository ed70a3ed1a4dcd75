"""``benchmarks/delivery.py --reference-qmail DIR``: a backlog delivered by real qmail and by ours.

What is measured and how is in ``delivery.py``'s docstring; the private copy
of DIR is ``reference_qmail.py``'s. Run as a program (by :func:`queue_ours`,
as qmailq) this file queues a backlog into one of our homes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from delivery_floor import floor_line
from reference_qmail import (
    ME,
    clean_queue,
    ids,
    load_average,
    median,
    print_ratios,
    queued,
    side_by_side,
    stop_group,
)

BODY = b"From: a@client.example\nTo: someone@bench.example\nSubject: bench\n\nhello\n"
#: The --maildirs users' first uid and gid (users/assign needs no passwd entry).
FIRST_UID = 4900
SENDER = "a@client.example"
SIDES = ("real", "ours")
#: qmail-send's log line of each delivery done: "delivery N: success: ..."
SUCCESS = b": success: "


def bench_users(home: Path, homes: Path, count: int) -> list[Path]:
    """users/assign for ``count`` users with fresh homes under ``homes`` (their
    Maildirs returned), and users/cdb from the home's own qmail-newu."""
    shutil.rmtree(homes, ignore_errors=True)
    homes.mkdir(mode=0o755)
    lines, maildirs = [], []
    for n in range(count):
        uid = FIRST_UID + n
        user = homes / f"u{n}"
        for sub in ("tmp", "new", "cur"):
            (user / "Maildir" / sub).mkdir(mode=0o700, parents=True)
        for path in [user, *user.rglob("*")]:
            os.chown(path, uid, uid)
        os.chmod(user, 0o700)
        lines.append(f"=u{n}:u{n}:{uid}:{uid}:{user}:::\n")
        maildirs.append(user / "Maildir")
    (home / "users" / "assign").write_text("".join(lines) + ".\n")
    subprocess.run([str(home / "bin" / "qmail-newu")], check=True, timeout=120)
    return maildirs


def envelope(n: int, users: int) -> tuple[str, str]:
    return SENDER, f"u{n % users}@{ME}"


def queue_real(home: Path, messages: int, users: int) -> None:
    """The backlog through real ``bin/qmail-queue``: message on fd 0, envelope on fd 1."""
    program = str(home / "bin" / "qmail-queue")
    for n in range(messages):
        sender, rcpt = envelope(n, users)
        read, write = os.pipe()
        os.write(write, f"F{sender}\0T{rcpt}\0\0".encode())
        os.close(write)
        try:
            subprocess.run([program], input=BODY, stdout=read, check=True, timeout=60)
        finally:
            os.close(read)


def queue_ours(home: Path, messages: int, users: int) -> None:
    """The backlog through our queue writer, in a child running as qmailq:qmail."""
    from server.privsep import QmailIds

    qids = QmailIds.of_home(home)
    if qids is None:
        raise SystemExit(f"{home} is not a split home")
    uid, gid = ids("qmailq", "qmail")
    cmd = [sys.executable, __file__, str(home), str(messages), str(users)]
    subprocess.run(cmd, check=True, timeout=3600, user=uid, group=gid, extra_groups=[gid])


def queue_backlog_child(home: Path, messages: int, users: int) -> int:
    """This file run as a program (``HOME MESSAGES USERS``), as qmailq: what the
    setuid qmail-queue does, in this process, once per message."""
    from harness.commands.serve import make_context
    from server.queue.client import queue_message

    os.umask(0o033)  # qmail-queue.c
    ctx = make_context(home)
    for n in range(messages):
        sender, rcpt = envelope(n, users)
        result = queue_message(ctx, {}, BODY, sender, [rcpt], invoker=0)
        if result.error:
            raise SystemExit(f"queueing failed: {result.error}")
    return 0


class LogReader:
    """qmail-send's log, drained in a thread (a full pipe would stop it).

    It counts the ``delivery N: success`` lines, notes when the first came
    and sets ``done`` once ``expected`` have come, and keeps the first
    ``deferral``/``failure`` line. The log is read in blocks and looked at
    by whole lines, so that the benchmark itself costs the machine little:
    it runs beside a side that may be short of CPU.
    """

    def __init__(self, stream: IO[bytes], expected: int) -> None:
        self.stream = stream
        self.expected = expected
        self.delivered = 0
        self.first: float | None = None
        self.trouble: str | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        fd = self.stream.fileno()
        tail = b""
        while block := os.read(fd, 1 << 16):
            lines, _, tail = (tail + block).rpartition(b"\n")
            found = lines.count(SUCCESS)
            if found and self.first is None:
                self.first = time.monotonic()
            self.delivered += found
            if self.trouble is None and (b": deferral: " in lines or b": failure: " in lines):
                self.trouble = _trouble(lines)
            if self.delivered >= self.expected or self.trouble is not None:
                self.done.set()
        self.done.set()  # the log ended: qmail-send is gone


def _trouble(lines: bytes) -> str:
    """The first deferral or failure line of ``lines``."""
    for line in lines.split(b"\n"):
        if b": deferral: " in line or b": failure: " in line:
            return line.decode(errors="replace")
    return ""


#: the tree this benchmark belongs to: our programs run from it (a home's bin/
#: scripts import ``server``, which may be installed from another checkout)
REPO = Path(__file__).resolve().parent.parent


def start_send(side: str, home: Path) -> subprocess.Popen[bytes]:
    """qmail-start ./Maildir/ of that side, as qmail's rc starts it (env - PATH=...).

    Ours gets PYTHONPATH too, so that our programs are this tree's (qmail-sim
    serve --send runs the same HOME/bin/qmail-start, but clears PYTHONPATH).
    """
    cmd = [str(home / "bin" / "qmail-start"), "./Maildir/"]
    env = {"PATH": f"{home}/bin:/usr/bin:/bin"}
    if side == "ours":
        env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, start_new_session=True
    )


def wait_delivered(log: LogReader, deadline: float) -> float:
    """Wait (at most until ``deadline``) until qmail-send has logged every
    delivery's success; when it logged the first (time.monotonic)."""
    log.done.wait(max(0.0, deadline - time.monotonic()))
    if log.trouble is not None:
        raise SystemExit(f"qmail-send: {log.trouble}")
    if log.delivered < log.expected:
        raise SystemExit(f"{log.delivered} of {log.expected} delivered in time")
    assert log.first is not None
    return log.first


def check_owners(maildirs: list[Path]) -> None:
    """Each delivery ran as its user (qmail-lspawn's setuid): the files are theirs."""
    for n, maildir in enumerate(maildirs):
        for entry in os.scandir(maildir / "new"):
            if entry.stat().st_uid != FIRST_UID + n:
                raise SystemExit(f"{entry.path} is not owned by uid {FIRST_UID + n}")


def deliver_run(
    side: str, home: Path, homes: Path, messages: int, users: int
) -> tuple[float, float]:
    """One run: empty queue and Maildirs, queue the backlog, deliver it.
    Deliveries per second, and seconds from the start to the first delivery."""
    clean_queue(home)
    maildirs = bench_users(home, homes, users)
    (queue_real if side == "real" else queue_ours)(home, messages, users)
    if queued(home) != messages:
        raise SystemExit(f"{side}: {queued(home)} of {messages} queued")
    started = time.monotonic()
    proc = start_send(side, home)
    try:
        assert proc.stdout is not None
        log = LogReader(proc.stdout, messages)
        first = wait_delivered(log, started + 120 + messages / 10)
        elapsed = time.monotonic() - started
    finally:
        stop_group(proc)
    delivered = sum(len(os.listdir(m / "new")) for m in maildirs)
    if delivered != messages:
        raise SystemExit(f"{side}: {delivered} delivered, expected {messages}")
    check_owners(maildirs)
    clean_queue(home)
    return messages / elapsed, first - started


def compare_with_reference(args: argparse.Namespace) -> int:
    """Real qmail (a private copy of --reference-qmail) against ours, interleaved."""
    messages = args.messages or 3000
    repeat = args.repeat or 3
    with side_by_side(args) as (reference, scratch, homes):
        print(
            f"real netqmail ({reference}, a private copy: qmail-start ./Maildir/) vs "
            f"qmail-sim's qmail-start ./Maildir/ (a split home; {REPO}); "
            f"a backlog of {messages} messages, "
            f"median of {repeat}, runs interleaved; {os.cpu_count()} CPUs, {load_average()}",
            flush=True,
        )
        rows = []
        for users in args.maildirs:
            rates: dict[str, list[float]] = {side: [] for side in SIDES}
            firsts: dict[str, float] = {}
            for run in range(repeat):
                for side in SIDES if run % 2 == 0 else SIDES[::-1]:
                    if args.only not in (None, side):
                        rates[side].append(1.0)
                        firsts[side] = 0.0
                        continue
                    where = scratch / f"users-{side}"
                    rate, firsts[side] = deliver_run(side, homes[side], where, messages, users)
                    rates[side].append(rate)
                print(
                    f"  {users} Maildirs, run {run + 1}: real {rates['real'][-1]:.0f}, "
                    f"qmail-sim {rates['ours'][-1]:.0f} deliveries/s; first delivery after "
                    f"{firsts['real']:.2f} s and {firsts['ours']:.2f} s ({load_average()})",
                    flush=True,
                )
                if args.floor:
                    line = floor_line(scratch / "floor", messages, users, BODY)
                    print(f"  {line} ({load_average()})", flush=True)
            rows.append((users, median(rates["real"]), median(rates["ours"])))
        print_ratios("Maildirs", rows)
    return 0


if __name__ == "__main__":
    sys.exit(queue_backlog_child(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
