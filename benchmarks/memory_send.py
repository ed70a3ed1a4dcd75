"""qmail-send's memory and one deferring pass over a big queue.

    python benchmarks/memory_send.py [--messages 100000] [--channel local] [--dir DIR]

Builds a throw-away qmail home and writes ``--messages`` messages straight
into its queue in the state qmail-send's todo_do leaves them (INTERNALS:
``mess/N`` and ``info/N`` with the sender, ``local/N`` or ``remote/N`` with
one ``T`` record; split directories, info's mtime the message's birth, the
channel file's mtime its next retry, already due). Then, in a fresh Python
process so that nothing of the builder's memory is counted, it runs
qmail-send's daemon (:class:`server.send.daemon.Daemon`: real clock, worker
threads, its log written line by line to /dev/null) with a channel that
defers every delivery at once (a ``Z`` report), and prints:

- startup: the Daemon built (pqstart stats every message's files);
- one full deferring pass: from then until the last of the N deferrals;
- the child's peak RSS (VmHWM) at the end of that pass;
- exit: the TERM that follows (pqfinish stamps every channel file's mtime).

References, measured in the same run, each in a fresh process:

- memory: the same daemon on an empty queue (same imports, same threads),
  so the difference is what the N queued messages cost;
- time: ``os.stat`` of the N ``info/`` files alone (warm cache, as for the
  daemon) -- the least any scheduler that looks at each message must do;
- real qmail's floor: qmail-lspawn forks and execs a qmail-local for every
  delivery, so a deferring pass of real qmail-send costs at least one
  fork+exec per message. Measured as ``posix_spawn`` + ``waitpid`` of
  ``/bin/true`` (a sample of at most 5,000, in as many threads as there are
  CPUs, scaled to N). It is a lower bound for real qmail, not a measurement
  of it: qmail-local also reads its .qmail files and qmail-send does its own
  work besides.

Real netqmail-1.06 holds about 16 bytes per queued message per schedule
(prioq.c) and reads info/local/remote only when a message is due.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.spawn import Channel, ChannelName, DeliveryJob

ME = "bench.example"
BODY = b"From: a@client.example\nTo: someone\nSubject: bench\n\nhello\n"
DEFERRED = b"Zbenchmark: always deferred. (#4.3.0)\n"
#: messages are born over the day before the last hour, in no order of their ids
#: (births and due times are spread, so the schedules' heaps sift as in a real queue)
AGE = 3600
SPREAD = 86400
#: fork+exec runs timed for the real-qmail floor (then scaled to N)
SPAWN_SAMPLE = 5000


def vmhwm_kib() -> int:
    """Peak resident set size of this process (VmHWM in /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc/self/status")


def _put(path: str, data: bytes, mtime: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


def build_queue(home: Path, count: int, channel: str, now: int) -> None:
    """N messages as todo_do leaves them: mess, info (F record), one channel file.

    info's mtime is the birth, the channel file's the time it is next due.
    """
    from server.qdir import qfn

    queue = home / "queue"
    for msgid in range(1, count + 1):
        birth = now - AGE - msgid * 7919 % SPREAD
        due = now - 1 - msgid * 104729 % AGE  # due within the last hour: all in one pass
        _put(str(qfn(queue, "mess", msgid)), BODY, birth)
        _put(str(qfn(queue, "info", msgid)), b"Fa@client.example\0", birth)
        rcpt = f"Tuser{msgid}@{ME}\0" if channel == "local" else f"Tuser{msgid}@far.example\0"
        _put(str(qfn(queue, channel, msgid)), rcpt.encode(), due)


# -- the child processes -------------------------------------------------------
class DeferAll:
    def deliver(self, job: DeliveryJob) -> bytes:
        return DEFERRED


def child_daemon(home: Path, count: int) -> dict[str, float]:
    from server.programs import ProgramContext
    from server.runtime import real_runtime
    from server.send.daemon import Daemon
    from server.send.program import line_writer

    ctx = ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())
    out = open(os.devnull, "wb")  # noqa: SIM115 - for the child's life
    write = line_writer(out)
    deferrals = 0
    marks: dict[str, float] = {}
    daemon: Daemon | None = None

    def log(line: str) -> None:
        nonlocal deferrals
        write(line)
        if ": deferral: " in line:
            deferrals += 1
            if deferrals == count:
                marks["pass_end"] = time.perf_counter()
                marks["hwm_pass"] = vmhwm_kib()
                assert daemon is not None
                daemon.terminate()

    channels: dict[ChannelName, Channel] = {"local": DeferAll(), "remote": DeferAll()}
    started = time.perf_counter()
    daemon = Daemon(ctx, channels, log)
    built = time.perf_counter()
    if count == 0:
        daemon.terminate()
        marks["pass_end"] = built
        marks["hwm_pass"] = vmhwm_kib()
    daemon.run()
    ended = time.perf_counter()
    return {
        "startup": built - started,
        "pass": marks["pass_end"] - built,
        "exit": ended - marks["pass_end"],
        "hwm_pass_kib": marks["hwm_pass"],
        "hwm_kib": vmhwm_kib(),
        "deferrals": deferrals,
    }


def child_stat(home: Path, count: int) -> dict[str, float]:
    from server.qdir import qfn

    queue = home / "queue"
    names = [str(qfn(queue, "info", msgid)) for msgid in range(1, count + 1)]
    started = time.perf_counter()
    for name in names:
        os.stat(name)
    return {"stat": time.perf_counter() - started}


def spawn_floor(count: int) -> float:
    """Seconds for ``count`` fork+exec+wait of /bin/true, from a timed sample."""
    sample = min(count, SPAWN_SAMPLE)
    if not sample:
        return 0.0

    def one(_: int) -> None:
        pid = os.posix_spawn("/bin/true", ["true"], {})
        os.waitpid(pid, 0)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(one, range(sample)):
            pass
    return (time.perf_counter() - started) * count / sample


def run_child(mode: str, home: Path, count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--home", str(home), "--messages", str(count)],
        check=True,
        stdout=subprocess.PIPE,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


# -- the parent ------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--channel", choices=("local", "remote"), default="local")
    parser.add_argument("--dir", type=Path, help="where to make the homes (default: a temp dir)")
    parser.add_argument("--child", choices=("daemon", "stat"), help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = child_daemon if args.child == "daemon" else child_stat
        print(json.dumps(run(args.home, args.messages)))
        return 0

    from server.home import setup

    n = args.messages
    base = Path(tempfile.mkdtemp(prefix="qmail-sim-memsend-", dir=args.dir))
    try:
        empty, home = base / "empty", base / "queued"
        setup(empty, me=ME)
        setup(home, me=ME)
        started = time.perf_counter()
        build_queue(home, n, args.channel, int(time.time()))
        os.sync()  # the daemon is not to share the disk with the builder's writeback
        built = time.perf_counter() - started
        print(f"built a queue of {n} messages ({args.channel}/) in {built:.1f} s")
        idle = run_child("daemon", empty, 0)
        ours = run_child("daemon", home, n)
        stat = run_child("stat", home, n)
        floor = spawn_floor(n)
        if ours["deferrals"] != n:
            raise SystemExit(f"{ours['deferrals']} deferrals, expected {n}")
        hwm, base_hwm = ours["hwm_pass_kib"] / 1024, idle["hwm_pass_kib"] / 1024
        print(f"qmail-send startup (pqstart over {n} messages): {ours['startup']:.2f} s")
        print(
            f"one deferring pass over {n} messages: {ours['pass']:.2f} s "
            f"({n / ours['pass']:.0f} deliveries/s)"
        )
        print(f"exit (pqfinish stamps {n} files): {ours['exit']:.2f} s")
        print(f"reference: stat of the {n} info/ files alone: {stat['stat']:.2f} s")
        print(f"pass / stat reference: {ours['pass'] / stat['stat']:.1f}")
        if floor:
            print(
                f"real qmail's floor: {n} fork+exec of /bin/true (qmail-lspawn runs a "
                f"qmail-local per delivery), {os.cpu_count()} at a time: {floor:.2f} s "
                f"(from {min(n, SPAWN_SAMPLE)}); pass / floor: {ours['pass'] / floor:.2f}"
            )
        print(
            f"qmail-send peak RSS with {n} queued: {hwm:.1f} MiB at the end of the pass "
            f"({ours['hwm_kib'] / 1024:.1f} MiB through exit)"
        )
        print(f"reference: the same daemon on an empty queue: {base_hwm:.1f} MiB")
        per = (hwm - base_hwm) * 2**20 / n if n else 0.0
        print(f"queued messages cost {hwm - base_hwm:.1f} MiB, {per:.0f} bytes per message")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
