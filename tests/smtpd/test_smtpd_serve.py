"""`qmail-sim serve` argument handling (the live runs are in test_smtpd_live.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.cli import main
from harness.commands.serve import loopback_address


def test_loopback_only() -> None:
    assert loopback_address("127.0.0.1:25") == ("127.0.0.1", 25)
    assert loopback_address("127.1.2.3:0") == ("127.1.2.3", 0)
    for bad in (
        "192.0.2.1:25",
        "0.0.0.0:25",
        "127.0.0.1",
        "127.0.0.1:x",
        "localhost:25",
        "127.0.0.1:70000",
        "[::1]:25",
    ):
        with pytest.raises(argparse.ArgumentTypeError):
            loopback_address(bad)


def test_not_a_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--smtp", "127.0.0.1:0", str(tmp_path)]) == 111
    assert "is not a qmail home" in capsys.readouterr().err
