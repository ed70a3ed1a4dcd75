"""qmail-send as a daemon: real clock, worker threads, trigger, signals."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from server.home import setup
from server.programs import ProgramContext
from server.queue.client import queue_message
from server.runtime import real_runtime
from server.send.daemon import Daemon
from server.send.program import run_send
from server.spawn import DeliveryJob

WAIT = 10.0  # seconds: a bound on waiting for events, never a sleep


@dataclass
class Watch:
    """A log sink tests can wait on."""

    lines: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, line: str) -> None:
        with self.cond:
            self.lines.append(line)
            self.cond.notify_all()

    def wait_for(self, pred: str) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(pred in line for line in self.lines), WAIT)
        assert ok, f"never saw {pred!r} in {self.lines}"


@dataclass
class GateChannel:
    """Blocks every delivery until released; counts how many run at once."""

    release: threading.Event = field(default_factory=threading.Event)
    running: int = 0
    peak: int = 0
    done: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def wait_running(self, n: int) -> None:
        with self.lock:
            assert self.lock.wait_for(lambda: self.running >= n, WAIT)

    def deliver(self, job: DeliveryJob) -> bytes:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.lock.notify_all()
        self.release.wait(WAIT)
        with self.lock:
            self.running -= 1
            self.done.append(job.recipient)
        return b"Kok\n"


def make_ctx(home: Path) -> ProgramContext:
    return ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())


@pytest.fixture
def running(home: Path) -> Iterator[tuple[Daemon, Watch, GateChannel, ProgramContext]]:
    (home / "control" / "concurrencylocal").write_text("2\n")
    ctx = make_ctx(home)
    watch = Watch()
    gate = GateChannel()
    daemon = Daemon(ctx, {"local": gate, "remote": gate}, watch)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        yield daemon, watch, gate, ctx
    finally:
        gate.release.set()
        daemon.terminate()
        thread.join(WAIT)
        assert not thread.is_alive()


def test_trigger_wakes_it_and_concurrency_limits_it(
    running: tuple[Daemon, Watch, GateChannel, ProgramContext],
) -> None:
    _daemon, watch, gate, ctx = running
    rcpts = [f"u{i}@mx.example.org" for i in range(5)]
    result = queue_message(ctx, {}, b"Subject: x\n\nbody\n", "a@x.example", rcpts, invoker=0)
    assert result.error == ""
    watch.wait_for("status: local 2/2 remote 0/20")
    gate.wait_running(2)
    assert not any("starting delivery 3" in line for line in watch.lines)
    gate.release.set()
    watch.wait_for(f"end msg {result.msgid}")
    assert gate.peak == 2
    assert sorted(gate.done) == rcpts


def test_terminate_waits_for_deliveries(home: Path) -> None:
    ctx = make_ctx(home)
    watch = Watch()
    gate = GateChannel()
    daemon = Daemon(ctx, {"local": gate, "remote": gate}, watch)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    queue_message(ctx, {}, b"\n", "a@x.example", ["b@mx.example.org"], invoker=0)
    watch.wait_for("starting delivery 1")
    daemon.terminate()
    assert thread.is_alive()
    gate.release.set()
    thread.join(WAIT)
    # the delivery in flight finished; the status line shows the exit flag.
    # Whether "end msg" comes before the exit depends, in qmail-send.c too, on
    # whether a pass read the end of the message's local/ file (flaghiteof)
    # before TERM: pass_dochan returns at once on flagexitasap.
    lines = watch.lines
    [msgid] = [line.split()[2] for line in lines if line.startswith("new msg ")]
    done = ["delivery 1: success: ok/", "status: local 0/10 remote 0/20 exitasap"]
    assert lines[lines.index(done[0]) :] in (
        [*done, "status: exiting"],
        [*done, f"end msg {msgid}", "status: exiting"],
    )


def test_second_instance_refuses_to_start(home: Path) -> None:
    # hold the send mutex the way a running qmail-send does
    fd = os.open(home / "queue" / "lock" / "sendmutex", os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        watch = Watch()
        assert run_send(make_ctx(home), {}, watch, {}) == 111
        assert watch.lines == ["alert: cannot start: qmail-send is already running"]
    finally:
        os.close(fd)


def test_missing_controls(tmp_path: Path) -> None:
    home = tmp_path / "bare"
    setup(home)
    watch = Watch()
    code = run_send(make_ctx(home), {}, watch, {})
    assert code == 111
    assert watch.lines == ["alert: cannot start: unable to read controls"]


@pytest.mark.live
def test_process_signals(home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--home", str(home), "qmail-send"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    watchdog = threading.Timer(30, proc.kill)  # a hung process fails, never hangs
    watchdog.start()
    first = proc.stdout.readline()
    assert first == b"status: local 0/10 remote 0/20\n"
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGALRM)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=WAIT)
    watchdog.cancel()
    assert proc.returncode == 0, err
    assert out.endswith(b"status: exiting\n")


def test_a_signal_caught_by_another_thread_still_wakes_the_loop(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel may give SIGTERM to any thread (it did, after SIGSTOP and
    SIGCONT from the qmail:DIR target). Python runs the handler in the main
    thread, blocked in its wait (server.timedread.wait_readable) until its
    next wake-up: the self-pipe must be the signal wakeup fd, so TERM is acted
    on now."""
    from server import timedread
    from server.send import daemon as daemon_module
    from server.send.program import SignalRouter

    asleep = threading.Event()
    real_wait = timedread.wait_readable

    def watched_wait(fds: list[int], timeout: float | None) -> list[int]:
        if timeout is None or timeout > WAIT:  # the long sleep of an idle qmail-send
            asleep.set()
        return real_wait(fds, timeout)

    monkeypatch.setattr(daemon_module, "wait_readable", watched_wait)
    watch = Watch()
    router = SignalRouter()
    late: list[str] = []

    def from_a_worker() -> None:
        assert asleep.wait(WAIT)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # to this thread
        with watch.cond:
            if not watch.cond.wait_for(lambda: "status: exiting" in watch.lines, WAIT):
                late.append("TERM was not acted on")
                router.handle(signal.SIGTERM, None)  # end the run, as a method call

    sender = threading.Thread(target=from_a_worker)
    sender.start()
    try:
        assert run_send(make_ctx(home), {}, watch, {}, router=router) == 0
    finally:
        sender.join(WAIT)
    assert late == []
    assert watch.lines[-1] == "status: exiting"
