"""Kill bin/qmail-send (SIGKILL) in the middle of deliveries and restart it.

Every queued message must reach the Maildir at least once, and nothing may be
left in todo/, info/, local/ or remote/ once the restarted daemon is idle.
The kill point is a seeded random delivery number, so a failure reproduces.
"""

from __future__ import annotations

import email
import io
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from server.home import setup
from server.programs import ProgramContext
from server.queue.client import queue_message
from server.runtime import real_runtime

MESSAGES = 12


def _start(home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "QMAILSIM_DEFAULTDELIVERY": "./Maildir/"}
    return subprocess.Popen(
        [sys.executable, "-m", "server", "--home", str(home), "qmail-send"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def _queue_empty(home: Path) -> bool:
    q = home / "queue"
    return not any(
        p.is_file() for sub in ("todo", "info", "local", "remote") for p in (q / sub).rglob("*")
    )


@pytest.mark.live
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_during_deliveries_then_restart(tmp_path: Path, seed: int) -> None:
    home = tmp_path / "qmail"
    setup(home, me="mx.example.org")
    maildir = home / "alias" / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    ctx = ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())
    for i in range(MESSAGES):
        body = f"Subject: m{i}\n\nbody {i}\n".encode()
        assert queue_message(ctx, {}, body, "a@x.example", ["postmaster"], invoker=0).error == ""
    kill_at = random.Random(seed).randint(1, MESSAGES)

    first = _start(home)
    watchdog = threading.Timer(30, first.kill)
    watchdog.start()
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith(f"starting delivery {kill_at}:"):
            break
    first.kill()
    first.communicate(timeout=10)
    watchdog.cancel()

    # Messages still queued (info/ written, or todo/ not yet processed): the
    # restarted daemon must log "end msg" once for each. Its log is the clock
    # here: no polling, and the watchdog bounds the wait.
    queued = {
        p.name for sub in ("todo", "info") for p in (home / "queue" / sub).rglob("*") if p.is_file()
    }
    second = _start(home)
    watchdog = threading.Timer(30, second.kill)
    watchdog.start()
    try:
        assert second.stdout is not None
        ended = 0
        for line in second.stdout if queued else ():
            ended += line.startswith("end msg ")
            if ended == len(queued):
                break
    finally:
        # TERM is handled between passes, after the message files are removed.
        second.send_signal(signal.SIGTERM)
        rest, _ = second.communicate(timeout=20)
        watchdog.cancel()
    out = rest
    assert out.endswith("status: exiting\n")
    subjects = set()
    for path in (maildir / "new").iterdir():
        subjects.add(email.message_from_bytes(path.read_bytes())["Subject"])
    assert subjects == {f"m{i}" for i in range(MESSAGES)}
    assert _queue_empty(home)
