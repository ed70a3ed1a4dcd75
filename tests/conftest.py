"""Fixtures every test area shares: a fresh qmail home made by setup()."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.home import setup


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """``tmp_path/qmail``, set up for the host mx.example.org."""
    path = tmp_path / "qmail"
    setup(path, me="mx.example.org")
    return path
