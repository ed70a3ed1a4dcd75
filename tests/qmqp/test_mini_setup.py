"""`qmail-sim setup --mini HUB`: a mini-qmail home (qmail-qmqpc(8))."""

from __future__ import annotations

import os
from pathlib import Path

from harness.cli import main


def test_setup_mini_links_qmail_queue_to_qmqpc(tmp_path: Path) -> None:
    home = tmp_path / "mini"
    args = ["setup", "--one-user", "--me", "client.example", "--mini", "10.0.0.1"]
    assert main([*args, "--mini", "10.0.0.2", str(home)]) == 0
    assert os.readlink(home / "bin" / "qmail-queue") == "qmail-qmqpc"
    assert (home / "control" / "qmqpservers").read_text() == "10.0.0.1\n10.0.0.2\n"
    # setup again without --mini: the home queues locally again
    assert main(["setup", "--one-user", str(home)]) == 0
    assert not (home / "bin" / "qmail-queue").is_symlink()
