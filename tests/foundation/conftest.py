"""Fixtures for the foundation tests: a fresh home made by setup()."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.home import setup


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "qmail"
    setup(path, me="mx.example.org")
    return path
