"""The daemon's delivery threads (server/send/workers.py).

Nothing here sleeps: jobs block on events the test sets, and every wait has a
bound so a bug fails instead of hanging.
"""

from __future__ import annotations

import threading

import pytest

from server.send.workers import Workers

WAIT = 10.0  # seconds: a bound on waiting for events, never a sleep


class Gate:
    """Jobs that block until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.cond = threading.Condition()
        self.running = 0
        self.peak = 0
        self.done: list[int] = []
        self.threads: set[str] = set()

    def work(self, job: int) -> None:
        with self.cond:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()
        assert self.release.wait(WAIT)
        with self.cond:
            self.running -= 1
            self.done.append(job)
            self.cond.notify_all()

    def wait_running(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.running >= n, WAIT)

    def wait_done(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.done) >= n, WAIT)


def test_at_most_limit_threads_and_every_job_runs_once() -> None:
    gate = Gate()
    workers: Workers[int] = Workers(3, gate.work)
    for job in range(7):
        workers.submit(job)
    gate.wait_running(3)
    assert gate.running == 3  # the other four wait their turn in the queue
    gate.release.set()
    workers.shutdown(wait=True)
    assert sorted(gate.done) == list(range(7))
    assert gate.peak == 3
    assert gate.threads == {"delivery_0", "delivery_1", "delivery_2"}


def test_a_thread_is_started_only_when_all_are_busy() -> None:
    gate = Gate()
    gate.release.set()
    workers: Workers[int] = Workers(5, gate.work)
    workers.submit(0)
    gate.wait_done(1)
    # the one thread may not have counted itself idle yet; at most one more is
    # started for the second job, never a thread per job
    workers.submit(1)
    workers.shutdown(wait=True)
    assert sorted(gate.done) == [0, 1]
    assert len(gate.threads) <= 2


def test_shutdown_lets_the_jobs_handed_over_finish() -> None:
    gate = Gate()
    workers: Workers[int] = Workers(1, gate.work)
    workers.submit(1)
    workers.submit(2)
    gate.wait_running(1)
    finisher = threading.Thread(target=workers.shutdown)
    finisher.start()
    gate.release.set()
    finisher.join(WAIT)
    assert not finisher.is_alive()
    assert gate.done == [1, 2]


def test_a_job_that_raises_does_not_end_its_thread(capsys: pytest.CaptureFixture[str]) -> None:
    done: list[int] = []

    def work(job: int) -> None:
        if job == 1:
            raise RuntimeError("channel bug")
        done.append(job)

    workers: Workers[int] = Workers(1, work)
    for job in (1, 2):
        workers.submit(job)
    workers.shutdown(wait=True)
    assert done == [2]
    assert "RuntimeError: channel bug" in capsys.readouterr().err
