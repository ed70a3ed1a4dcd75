"""``qmail-sim serve HOME --smtp ... --send``: receive and deliver in one process."""

from __future__ import annotations

import mailbox
import signal
import smtplib
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from server.home import setup


@pytest.mark.live
def test_serve_receives_and_delivers_to_a_maildir(tmp_path: Path) -> None:
    home = tmp_path / "qmail"
    setup(home, me="mx.example.org")
    maildir = home / "alias" / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "serve",
            str(home),
            "--smtp",
            "127.0.0.1:0",
            "--send",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # a watchdog: a hung process must fail the test, not hang the suite
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            if line.startswith("listening smtp "):
                port = int(line.rsplit(":", 1)[1])
                break
        assert port is not None
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(
                "a@x.example", ["postmaster@mx.example.org"], b"Subject: hi\r\n\r\nyo\r\n"
            )
        log = []
        for line in proc.stdout:
            log.append(line.rstrip("\n"))
            if line.startswith("end msg "):
                break
        assert any(line.startswith("delivery 1: success: ") for line in log), log
        box = mailbox.Maildir(maildir, create=False)
        messages = list(box)
        assert len(messages) == 1
        assert messages[0]["Subject"] == "hi"
        assert messages[0]["Delivered-To"] is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        watchdog.cancel()
    assert proc.returncode == 0, err
    assert out.rstrip("\n").endswith("status: exiting")
