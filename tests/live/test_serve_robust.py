"""``qmail-sim serve`` under conditions it must survive or refuse cleanly (issue 13).

Starting: a port in use or a qmail-send already running is one line and exit
111, with no ``listening`` line first. Running: ALRM and HUP do to ``--send``
what they do to qmail-send; POP3 serves as many sessions at once as ``-c``
allows. Processes are real, on 127.0.0.1; every wait has a deadline.
"""

from __future__ import annotations

import fcntl
import os
import poplib
import queue
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.live

WAIT = 10.0  # seconds: a bound on waiting for something, never a sleep


class Served:
    """A ``qmail-sim serve`` process whose stdout lines a test can wait for."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._new: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self._err.append(self.proc.stderr.read())

    def wait_for(self, start: str) -> str | None:
        """The first line (seen so far or within WAIT) that begins with ``start``."""
        deadline = time.monotonic() + WAIT
        while True:
            found = next((line for line in self.lines if line.startswith(start)), None)
            if found is not None:
                return found
            try:
                line = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                return None  # the process has ended
            self.lines.append(line)

    def port(self, kind: str) -> int:
        line = self.wait_for(f"listening {kind} ")
        assert line is not None, (self.lines, self.stop())
        return int(line.rsplit(":", 1)[1])

    def stop(self) -> str:
        """TERM it (if still running) and wait; its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(WAIT)
        while not self._new.empty():  # every line it printed, in self.lines
            line = self._new.get()
            if line is not None:
                self.lines.append(line)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        return "".join(self._err)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


def test_smtp_port_in_use_is_one_line(
    home: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(home), "--smtp", f"127.0.0.1:{busy_port}"]) == 111
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err == f"qmail-sim serve: unable to bind smtp 127.0.0.1:{busy_port}: address already used\n"
    )


def test_a_busy_pop3_port_stops_smtp_before_it_is_announced(
    home: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", str(home), "--smtp", "127.0.0.1:0", "--pop3", f"127.0.0.1:{busy_port}"]
    assert main(argv) == 111
    out, err = capsys.readouterr()
    assert "listening" not in out
    assert (
        err == f"qmail-sim serve: unable to bind pop3 127.0.0.1:{busy_port}: address already used\n"
    )


def test_a_second_send_on_one_home_exits(home: Path) -> None:
    # hold the send mutex as a running qmail-send (or a first serve --send) does
    fd = os.open(home / "queue" / "lock" / "sendmutex", os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        served = Served(str(home), "--smtp", "127.0.0.1:0", "--send")
        try:
            code = served.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            code = None
        err = served.stop()
    finally:
        os.close(fd)
    assert code == 111, err
    assert served.lines == ["alert: cannot start: qmail-send is already running"]


def test_alrm_and_hup_go_to_qmail_send(home: Path) -> None:
    (home / "alias" / ".qmail-defer").write_text("|exit 111\n")
    served = Served(str(home), "--smtp", "127.0.0.1:0", "--send")
    try:
        port = served.port("smtp")
        assert served.wait_for("listening delivery ") is not None
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
            client.sendmail("a@x.example", ["defer@mx.example.org"], b"Subject: 1\r\n\r\n1\r\n")
        assert served.wait_for("delivery 1: deferral: ") is not None, served.lines
        # ALRM: qmail-send retries now, not in 100 seconds
        served.proc.send_signal(signal.SIGALRM)
        retry = served.wait_for("starting delivery 2: ")
        assert retry is not None and retry.endswith(" to local defer@mx.example.org"), served.lines
        # HUP: qmail-send rereads locals; new.example is local from now on
        (home / "control" / "locals").write_text("mx.example.org\nnew.example\n")
        (home / "control" / "rcpthosts").write_text("mx.example.org\nnew.example\n")
        served.proc.send_signal(signal.SIGHUP)
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
            client.sendmail("a@x.example", ["postmaster@new.example"], b"Subject: 2\r\n\r\n2\r\n")
        started = served.wait_for("starting delivery 3: ")
        assert started is not None and started.endswith(" to local postmaster@new.example"), (
            served.lines
        )
    finally:
        err = served.stop()
    assert served.proc.returncode == 0, err
    assert served.lines[-1] == "status: exiting"


def test_pop3_serves_as_many_sessions_as_its_concurrency(home: Path) -> None:
    """Idle sessions each hold a thread; asyncio's default pool has min(32, cores + 4)."""
    default_pool = min(32, (os.cpu_count() or 1) + 4)
    sessions = default_pool + 2
    served = Served(str(home), "--pop3", "127.0.0.1:0", "--concurrency", str(sessions))
    clients: list[poplib.POP3] = []
    try:
        port = served.port("pop3")
        for _ in range(sessions):  # each waits for its banner before the next connects
            clients.append(poplib.POP3("127.0.0.1", port, timeout=WAIT))
        assert all(c.getwelcome().startswith(b"+OK <") for c in clients)
    finally:
        for client in clients:
            client.close()
        err = served.stop()
    assert served.proc.returncode == 0, err
