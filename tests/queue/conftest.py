"""Fixtures for the queue tests: a fresh home and an in-process context for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.home import setup


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "qmail"
    setup(path, me="mx.example.org")
    return path
