"""server.privsep.closed_to: whether a user can reach a path, read from the modes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.privsep import closed_to

UID, GID = 54321, 54321  # nobody's: owner and group bits never apply


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory everyone may reach (pytest's own are 0700 from the top)."""
    path = Path(tempfile.mkdtemp(prefix="closed-to-"))
    os.chmod(path, 0o755)
    if (why := closed_to(UID, GID, path)) is not None:
        pytest.skip(f"the temporary directory is closed to others here: {why}")
    yield path
    shutil.rmtree(path)


def test_root_reaches_everything(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0)
    assert closed_to(0, 0, tmp_path / "d" / "x") is None


def test_an_open_path_is_reachable(open_dir: Path) -> None:
    exe = open_dir / "prog"
    exe.write_text("")
    exe.chmod(0o755)
    assert closed_to(UID, GID, exe, os.X_OK) is None


def test_a_closed_directory_on_the_way_is_named(open_dir: Path) -> None:
    closed = open_dir / "closed"
    (closed / "bin").mkdir(parents=True)
    os.chmod(closed, 0o700)
    why = closed_to(UID, GID, closed / "bin")
    assert why == f"{closed} is mode 0700, owner {os.getuid()}"


def test_the_file_itself_must_allow_what_is_needed(open_dir: Path) -> None:
    exe = open_dir / "prog"
    exe.write_text("")
    exe.chmod(0o644)
    assert closed_to(UID, GID, exe, os.R_OK) is None
    assert closed_to(UID, GID, exe, os.X_OK) == f"{exe} is mode 0644, owner {os.getuid()}"


def test_owner_and_group_bits_apply_to_their_owner_and_group(open_dir: Path) -> None:
    d = open_dir / "d"
    d.mkdir()
    os.chmod(d, 0o710)
    st = d.stat()
    assert closed_to(st.st_uid, GID, d, os.X_OK) is None
    assert closed_to(UID, st.st_gid, d, os.X_OK) is None
    assert closed_to(UID, GID, d, os.X_OK) is not None


def test_a_symlink_is_checked_by_its_real_path_too(open_dir: Path) -> None:
    hidden = open_dir / "hidden"
    hidden.mkdir(mode=0o700)
    (hidden / "python").write_text("")
    (hidden / "python").chmod(0o755)
    link = open_dir / "python"
    link.symlink_to(hidden / "python")
    assert closed_to(UID, GID, link, os.X_OK) == f"{hidden} is mode 0700, owner {os.getuid()}"
