"""qmail:DIR and the alias user: DIR/alias over the passwd home, what one
scenario leaves in DIR (the alias Maildir, queue/lock/tcpto) cleared, and DIR
held by one scenario at a time."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import netns
from harness.targets.qmail import TCPTO_SIZE, QmailTarget, _clear_alias_and_lock, _hold_home
from harness.targets.qmailserver import alias_home

pytestmark = pytest.mark.live


def _homes(tmp_path: Path, scratch_maildir: bool) -> tuple[Path, Path]:
    ref, scratch = tmp_path / "ref", tmp_path / "scratch"
    (ref / "queue" / "lock").mkdir(parents=True)
    (ref / "alias" / "Maildir" / "new").mkdir(parents=True)
    (ref / "alias" / "Maildir" / "new" / "1700000000.1.host").write_text("old bounce\n")
    (ref / "queue" / "lock" / "tcpto").write_bytes(b"\x7f\x00\x00\x01" * 8)
    (scratch / "alias").mkdir(parents=True)
    if scratch_maildir:
        (scratch / "alias" / "Maildir").mkdir()
    return ref, scratch


@pytest.mark.parametrize("scratch_maildir", [False, True])
def test_alias_maildir_and_tcpto_are_cleared(tmp_path: Path, scratch_maildir: bool) -> None:
    ref, scratch = _homes(tmp_path, scratch_maildir)
    _clear_alias_and_lock(ref, scratch)
    maildir = ref / "alias" / "Maildir"
    assert maildir.is_dir() is scratch_maildir
    if scratch_maildir:
        assert sorted(p.name for p in maildir.iterdir()) == ["cur", "new", "tmp"]
        assert not [p for p in maildir.rglob("*") if p.is_file()]
    assert (ref / "queue" / "lock" / "tcpto").read_bytes() == bytes(TCPTO_SIZE)


HOME = alias_home()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
@pytest.mark.skipif(not netns.available(), reason=f"no namespaces: {netns.why_unavailable()}")
@pytest.mark.skipif(HOME is None or not HOME.is_dir(), reason="no alias user with a home")
def test_dir_alias_is_the_alias_users_home_in_the_namespace_only(tmp_path: Path) -> None:
    assert HOME is not None
    home = tmp_path / "qmail"
    (home / "alias").mkdir(parents=True)
    (home / "alias" / ".qmail-marker-for-test").write_text("&somebody\n")
    probe = (
        "import sys; from pathlib import Path; "
        "from harness.targets.qmailserver import bind_alias_home; "
        f"bind_alias_home(Path({str(home)!r})); "
        f"print(sorted(p.name for p in Path({str(HOME)!r}).iterdir()))"
    )
    done = subprocess.run(
        [*netns.prefix(), sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "['.qmail-marker-for-test']"
    assert not (HOME / ".qmail-marker-for-test").exists()  # outside: untouched


def _free(directory: Path) -> bool:
    """Whether another run could take ``directory`` now."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_dir_is_held_by_one_scenario_until_its_target_closes(tmp_path: Path) -> None:
    target = QmailTarget(str(tmp_path))
    target._hold = _hold_home(tmp_path)  # as start() takes it, before the home is touched
    assert not _free(tmp_path)
    target.close()
    assert _free(tmp_path) and target._hold is None
    target.close()  # twice, or after a start that failed: nothing held, nothing to do
