"""Split homes (hier.c's owners and modes, made as root with qmail's users), the
one-user fallback and its one line, and what ``qmail-sim setup`` refuses
(issue 13, command line item 11)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from server import home as home_mod
from server import privsep
from server.home import BIN_MODES, DEFAULT_BIN_MODE, listing, setup
from server.privsep import IDS_FILE, QmailIds
from server.programs import PROGRAMS
from tests.splithome import make_split_home, public_dir, split_ids_or_skip

__all__ = ["public_dir"]  # a fixture, used by name

# netqmail-1.06 hier.c, written out again here rather than read from
# server.home: (path, owner, mode); the group is always qmail.
HIER_DIRS = [
    ("", "root", 0o755),
    *((d, "root", 0o755) for d in ("control", "users", "bin", "boot", "doc", "man")),
    *((f"man/{k}{n}", "root", 0o755) for k in ("cat", "man") for n in (1, 5, 7, 8)),
    ("alias", "alias", 0o2755),
    ("queue", "qmailq", 0o750),
    ("queue/pid", "qmailq", 0o700),
    ("queue/intd", "qmailq", 0o700),
    ("queue/todo", "qmailq", 0o750),
    ("queue/bounce", "qmails", 0o700),
    ("queue/lock", "qmailq", 0o750),
]
HIER_SPLIT = [
    ("queue/mess", "qmailq", 0o750),
    ("queue/info", "qmails", 0o700),
    ("queue/local", "qmails", 0o700),
    ("queue/remote", "qmails", 0o700),
]
HIER_LOCK = [
    ("queue/lock/tcpto", "qmailr", 0o644),
    ("queue/lock/sendmutex", "qmails", 0o600),
    ("queue/lock/trigger", "qmails", 0o622),
]
HIER_BOOT = ["home", "proc", "binm1", "binm2", "binm3"]


def expected_entries() -> list[tuple[str, str, int]]:
    rows = [*HIER_DIRS, *HIER_LOCK]
    for rel, owner, mode in HIER_SPLIT:
        rows.append((rel, owner, mode))
        rows.extend((f"{rel}/{i}", owner, mode) for i in range(23))
    rows.extend((f"boot/{b}{df}", "root", 0o755) for b in HIER_BOOT for df in ("", "+df"))
    rows.append(("bin/qmail-queue", "qmailq", 0o4711))
    return rows


def owner_of(path: Path) -> tuple[str, str, int]:
    st = path.lstat()
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, st.st_mode)


def test_owners_and_modes_are_hier_c(public_dir: Path) -> None:
    split = make_split_home(public_dir)
    for rel, owner, mode in expected_entries():
        user, group, st_mode = owner_of(split.home / rel)
        assert (rel, user, group, oct(stat.S_IMODE(st_mode))) == (rel, owner, "qmail", oct(mode))
    assert stat.S_ISFIFO((split.home / "queue/lock/trigger").lstat().st_mode)


def test_only_the_listed_differences_from_a_one_user_home(public_dir: Path) -> None:
    split = make_split_home(public_dir)
    one = public_dir / "one"
    setup(one, me="mx.example.org")
    differ = set(listing(split.home)) ^ set(listing(one))
    assert differ == {
        "0711 f bin/qmail-queue",
        "4711 f bin/qmail-queue",
        *(f"{m:04o} f bin/{n}" for n, m in BIN_MODES.items() if m == 0o711 and n != "qmail-queue"),
        *(f"0755 f bin/{n}" for n, m in BIN_MODES.items() if m == 0o711 and n != "qmail-queue"),
    }


def test_scripts_are_roots_and_readable_where_runnable(public_dir: Path) -> None:
    split = make_split_home(public_dir)
    for name in PROGRAMS:
        if name == "qmail-queue":
            continue
        user, group, mode = owner_of(split.home / "bin" / name)
        expected = home_mod.script_mode(BIN_MODES.get(name, DEFAULT_BIN_MODE))
        assert (name, user, group, stat.S_IMODE(mode)) == (name, "root", "qmail", expected)
    assert home_mod.script_mode(0o711) == 0o755
    assert home_mod.script_mode(0o700) == 0o700


def test_bin_qmail_queue_is_a_compiled_setuid_program(public_dir: Path) -> None:
    split = make_split_home(public_dir)
    path = split.home / "bin" / "qmail-queue"
    assert path.read_bytes()[:4] == b"\x7fELF"
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        split.ids.qmailq,
        split.ids.qmail,
        0o4711,
    )


def test_ids_file_records_the_systems_ids(public_dir: Path) -> None:
    split = make_split_home(public_dir)
    assert QmailIds.of_home(split.home) == QmailIds.from_system() == split.ids
    for rel, mode in ((".qmail-sim", 0o755), (IDS_FILE, 0o644), (".qmail-sim/patches", 0o644)):
        user, _, st_mode = owner_of(split.home / rel)
        assert (rel, user, stat.S_IMODE(st_mode)) == (rel, "root", mode)


def test_rerun_keeps_queue_and_owners(public_dir: Path) -> None:
    split = make_split_home(public_dir)
    msg = split.home / "queue/mess/3/77"
    msg.write_bytes(b"kept\n")
    assert setup(split.home, ids=split.ids) is None
    assert msg.read_bytes() == b"kept\n"
    assert owner_of(split.home / "queue/info/3")[:2] == ("qmails", "qmail")


def test_a_planted_link_is_refused_not_followed(public_dir: Path) -> None:
    split = make_split_home(public_dir)
    victim = public_dir / "victim"
    victim.write_bytes(b"secret")
    os.chmod(victim, 0o600)
    tcpto = split.home / "queue/lock/tcpto"
    tcpto.unlink()
    tcpto.symlink_to(victim)  # as qmailq, who owns queue/lock, could
    with pytest.raises(OSError):
        setup(split.home, ids=split.ids)
    st = victim.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)


def test_cli_makes_a_split_home_as_root(
    public_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_split_home(public_dir)  # skips where a split home cannot be made
    assert cli_main(["setup", str(public_dir / "cli"), "--me", "mx.example.org"]) == 0
    assert capsys.readouterr().err == ""
    assert QmailIds.of_home(public_dir / "cli") is not None
    assert owner_of(public_dir / "cli/queue/bounce")[0] == "qmails"


def test_a_split_home_stays_split(public_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split = make_split_home(public_dir)
    assert cli_main(["setup", str(split.home), "--one-user"]) == 100
    err = capsys.readouterr().err
    said = f"{split.home} is a split home: it cannot become a one-user home (--one-user)"
    assert err == f"qmail-sim setup: {said}\n"


# --- the one-user fallback, in one line -------------------------------------


def test_one_user_line_when_not_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(home_mod, "privileged", lambda: False)
    assert cli_main(["setup", str(tmp_path / "h")]) == 0
    assert capsys.readouterr().err == "qmail-sim setup: a one-user home (not root)\n"
    assert QmailIds.of_home(tmp_path / "h") is None
    assert "0711 f bin/qmail-queue" in listing(tmp_path / "h")


def test_one_user_line_names_the_missing_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = "qmail-sim-no-such-user"
    users = (*privsep.USERS, absent)
    monkeypatch.setattr(privsep, "USERS", users)
    monkeypatch.setattr(home_mod, "USERS", users)
    monkeypatch.setattr(home_mod, "privileged", lambda: True)
    assert cli_main(["setup", str(tmp_path / "h")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("qmail-sim setup: a one-user home (qmail's users are missing: ")
    assert absent in err and err.count("\n") == 1
    assert QmailIds.of_home(tmp_path / "h") is None


def test_one_user_when_qmailq_cannot_reach_the_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split_ids_or_skip()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert cli_main(["setup", str(private / "h")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("qmail-sim setup: a one-user home (qmailq cannot run ")
    assert err.count("\n") == 1


# --- what setup refuses (issue 13, command line item 11) ----------------------


def test_refuses_a_regular_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert cli_main(["setup", str(target), "--one-user"]) == 100
    assert capsys.readouterr().err == f"qmail-sim setup: {target} exists and is not a directory\n"
    assert target.read_text() == "x"


def test_refuses_a_missing_parent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no" / "such" / "home"
    assert cli_main(["setup", str(target), "--one-user"]) == 100
    err = capsys.readouterr().err
    assert err == f"qmail-sim setup: {target}: the directory {target.parent} does not exist\n"
    assert not (tmp_path / "no").exists()


def test_refuses_a_non_empty_directory_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "docs"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    assert cli_main(["setup", str(target), "--one-user"]) == 100
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "--force" in err
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert cli_main(["setup", str(target), "--one-user", "--force"]) == 0
    assert (target / "queue/lock/trigger").exists() and (target / "notes.txt").exists()


def test_an_existing_home_and_an_empty_directory_are_fine(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["setup", str(empty), "--one-user"]) == 0
    assert cli_main(["setup", str(empty), "--one-user", "--me", "mx.example.org"]) == 0
    assert (empty / "control/me").read_text() == "mx.example.org\n"


def test_an_unwritable_place_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(home: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(home))

    monkeypatch.setattr("harness.commands.setup.setup", refuse)
    assert cli_main(["setup", str(tmp_path / "h"), "--one-user"]) == 111
    err = capsys.readouterr().err
    assert err.startswith("qmail-sim setup: cannot make ") and err.count("\n") == 1
