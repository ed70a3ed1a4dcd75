"""Fixtures for qmail-send's tests (the kit itself is in simkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .simkit import Sim, make_sim


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    return make_sim(tmp_path / "qmail")
