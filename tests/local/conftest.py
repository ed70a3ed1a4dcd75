"""Fixtures for local delivery tests: a qmail home, user homes, a runtime."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from server.home import setup
from server.local.forwarding import ForwardResult, Invoker
from server.programs import ProgramContext
from server.runtime import Runtime, virtual_runtime


@pytest.fixture
def rt() -> Runtime:
    runtime, _clock = virtual_runtime(seed=1, hostname="mx.example.org", uid=1000)
    runtime.fsync = False
    return runtime


@pytest.fixture
def qhome(tmp_path: Path) -> Path:
    home = tmp_path / "qmail"
    setup(home, me="mx.example.org")
    return home


@pytest.fixture
def ctx(qhome: Path, rt: Runtime) -> ProgramContext:
    return ProgramContext(home=qhome, runtime=rt, stderr=io.BytesIO())


def make_user_home(base: Path, name: str, dotqmail: Mapping[str, str] | None = None) -> Path:
    """A home directory 0755 with a Maildir and the given .qmail files (0644)."""
    home = base / name
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    for sub in ("tmp", "new", "cur"):
        (home / "Maildir" / sub).mkdir(parents=True)
    for suffix, text in (dotqmail or {}).items():
        path = home / f".qmail{suffix}"
        path.write_text(text)
        os.chmod(path, 0o644)
    return home


@dataclass
class FakeQueue:
    """Stands in for qmail-queue: records what a forward queued."""

    error: str = ""
    qp: int = 4242
    calls: list[tuple[bytes, str, list[str], Invoker, dict[str, str]]] = field(default_factory=list)

    def __call__(
        self,
        env: Mapping[str, str],
        message: bytes,
        sender: str,
        recipients: Sequence[str],
        invoker: Invoker,
    ) -> ForwardResult:
        self.calls.append((message, sender, list(recipients), invoker, dict(env)))
        return ForwardResult(error=self.error, qp=self.qp)


def hand_over(home: Path, uid: int, gid: int) -> Path:
    """Make ``home`` the user's, as an administrator would, when we run as root.

    Run as root, qmail-lspawn delivers as the recipient (server.local.asuser):
    the user must own the home and be able to reach it through the directories
    above it (pytest's temporary directories are 0700). Not root: nothing to do.
    """
    if os.geteuid() != 0:
        return home
    for parent in [home, *home.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, stat.S_IMODE(mode) | 0o711)
    for path in [home, *home.rglob("*")]:
        os.chown(path, uid, gid)
    return home
