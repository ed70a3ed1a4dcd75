"""The queue service (server.queue.service) as qmailq on a split home, for the
tests of tests/queue/test_queue_service*.py: fixtures used by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.splithome import SplitHome, make_split_home, public_dir, queue_service

__all__ = ["files", "public_dir", "service", "split"]


@pytest.fixture
def split(public_dir: Path) -> SplitHome:
    return make_split_home(public_dir, need_wrapper=False)


@pytest.fixture
def service(split: SplitHome, public_dir: Path) -> Iterator[Path]:
    """A service process as qmailq listening on public_dir/run/queue."""
    with queue_service(split, public_dir) as path:
        yield path


def files(split: SplitHome, sub: str) -> list[Path]:
    """The files under the home's queue/``sub``, sorted."""
    return sorted(p for p in (split.home / "queue" / sub).rglob("*") if p.is_file())
