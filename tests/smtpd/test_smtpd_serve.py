"""`qmail-sim serve` argument handling (the live runs are in test_smtpd_live.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.cli import main
from harness.commands.serve_args import loopback_address


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


def test_an_address_off_loopback_is_refused_without_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--smtp", "0.0.0.0:2525", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "0.0.0.0 is not a loopback address (give --allow-nonloopback" in err
    assert main(["serve", "--pop3", "192.0.2.1:110", str(tmp_path)]) == 2


def test_the_flag_lets_it_through_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # tmp_path is not a qmail home: serve stops after the warning, before binding
    argv = ["serve", "--allow-nonloopback", "--smtp", "0.0.0.0:2525", str(tmp_path)]
    assert main(argv) == 111
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "qmail-sim serve: warning: serving on 0.0.0.0:2525, not loopback:"
        " whoever can reach it can talk to this home"
    )
    assert "is not a qmail home" in err[1]
    assert main(["serve", "--allow-nonloopback", "--smtp", "127.0.0.1:0", str(tmp_path)]) == 111
    assert "warning" not in capsys.readouterr().err
