"""The qmail home: the tree against the hier.c-derived fixture, config-fast, re-runs, CLI."""

from __future__ import annotations

import importlib.util
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from server import home as home_mod
from server.home import ConfigFast, listing, setup
from server.programs import PROGRAMS, ProgramContext, run
from server.runtime import virtual_runtime

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "home" / "listing.txt"


def _fixture_rows() -> list[str]:
    lines = FIXTURE.read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_listing_matches_hier_c_fixture(home: Path) -> None:
    rows = _fixture_rows()
    assert len(rows) == len(set(rows))
    assert sorted(listing(home)) == sorted(rows)


def test_fixture_documents_each_difference() -> None:
    text = FIXTURE.read_text()
    assert "04711" in text and "0711 f bin/qmail-queue" in text
    assert "doc/" in text and "boot/" in text
    assert text.count("# DIFFERENCE:") >= 4


def test_home_dir_modes(home: Path) -> None:
    assert stat.S_IMODE(home.stat().st_mode) == 0o755
    assert stat.S_ISFIFO((home / "queue/lock/trigger").lstat().st_mode)
    assert (home / "queue/lock/tcpto").read_bytes() == b"\0" * 1024
    assert os.listdir(home / "doc") == []


def test_control_files(home: Path) -> None:
    control = home / "control"
    assert (control / "me").read_text() == "mx.example.org\n"
    assert (control / "defaultdomain").read_text() == "example.org\n"
    assert (control / "plusdomain").read_text() == "example.org\n"
    assert (control / "locals").read_text() == "mx.example.org\n"
    assert (control / "rcpthosts").read_text() == "mx.example.org\n"


@pytest.mark.parametrize(
    ("fqdn", "ddom", "pdom"),
    [
        ("mx.example.org", "example.org", "example.org"),
        ("a.b.c.d", "b.c.d", "c.d"),
        ("example.org", "example.org", "example.org"),
        ("localhost", "localhost", "localhost"),
        ("a.b.", "b.", "b."),  # the sed expressions on a trailing dot
        ("a..b", ".b", ".b"),
    ],
)
def test_config_fast_derivations(fqdn: str, ddom: str, pdom: str) -> None:
    cfg = ConfigFast.for_host(fqdn)
    assert (cfg.me, cfg.defaultdomain, cfg.plusdomain) == (fqdn, ddom, pdom)


def test_setup_twice_keeps_queue_maildirs_and_controls(home: Path) -> None:
    msg = home / "queue/mess/5/12345"
    msg.write_bytes(b"Subject: kept\n\nbody\n")
    (home / "queue/todo/12345").write_bytes(b"u1000\0p42\0Fa@b\0Tc@d\0\0")
    maildir = home / "alias" / "Maildir" / "new"
    maildir.mkdir(parents=True)
    (maildir / "1.2.host").write_text("mail\n")
    (home / "control" / "databytes").write_text("1000\n")
    (home / "queue/lock/tcpto").write_bytes(b"\1" * 1024)
    setup(home, me="mx.example.org")
    setup(home, me="other.example.net")
    assert msg.read_bytes() == b"Subject: kept\n\nbody\n"
    assert (home / "queue/todo/12345").exists()
    assert (maildir / "1.2.host").read_text() == "mail\n"
    assert (home / "control" / "databytes").read_text() == "1000\n"
    assert (home / "queue/lock/tcpto").read_bytes() == b"\1" * 1024
    # config-fast's `>>` appends; we append each name once.
    assert (home / "control/locals").read_text() == "mx.example.org\nother.example.net\n"
    assert (home / "control/me").read_text() == "other.example.net\n"


def test_patches_recorded_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "q"
    setup(target, me="mx.example.org", patches=["qmail-103"])
    setup(target)
    assert (target / ".qmail-sim/patches").read_text() == "qmail-103\n"
    with pytest.raises(ValueError):
        setup(target, patches=["nonsense"])


def test_boot_scripts(home: Path) -> None:
    names = sorted(p.name for p in (home / "boot").iterdir())
    expected = ["binm1", "binm2", "binm3", "home", "proc"]
    assert names == sorted(expected + [f"{n}+df" for n in expected])
    text = (home / "boot" / "proc+df").read_text()
    assert "qmail-start '|dot-forward .forward\n|preline procmail' splogger qmail" in text
    for name in names:
        subprocess.run(["sh", "-n", str(home / "boot" / name)], check=True)


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "setup" in out and "qmail" in out
    with pytest.raises(SystemExit) as exc:
        cli_main(["setup", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--me" in out and "--patch" in out and "config-fast" in out


def test_cli_setup(tmp_path: Path) -> None:
    # --one-user: as root with qmail's users, setup would make a split home.
    assert cli_main(["setup", str(tmp_path / "h"), "--me", "mx.example.org", "--one-user"]) == 0
    assert sorted(listing(tmp_path / "h")) == sorted(_fixture_rows())


def test_not_built_program_exits_111_in_process(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PROGRAMS, "qmail-fake", "server.no_such_module_yet")
    runtime, _ = virtual_runtime()
    err = io.BytesIO()
    ctx = ProgramContext(home=home, runtime=runtime, stderr=err)
    code = run("qmail-fake", ["qmail-fake"], {}, io.BytesIO(), io.BytesIO(), ctx)
    assert code == 111
    assert err.getvalue().count(b"\n") == 1


def _unbuilt() -> str | None:
    for name, module in PROGRAMS.items():
        try:
            if importlib.util.find_spec(module) is None:
                return name
        except ModuleNotFoundError:
            return name
    return None


@pytest.mark.live
def test_bin_program_not_built_exits_111(home: Path) -> None:
    name = _unbuilt()
    if name is None:
        pytest.skip("every program is built")
    proc = subprocess.run([str(home / "bin" / name)], capture_output=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 111
    assert proc.stdout == b""
    assert proc.stderr == f"{name}: not implemented in qmail-sim yet\n".encode()


@pytest.mark.live
def test_bin_showctl_runs_as_a_process(home: Path) -> None:
    proc = subprocess.run([str(home / "bin" / "qmail-showctl")], capture_output=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"qmail home directory: {home}.\n".encode())
    assert f"user ids: {os.getuid()}, ".encode() in proc.stdout


def test_bin_script_uses_installing_interpreter(home: Path) -> None:
    first = (home / "bin" / "qmail-smtpd").read_text().splitlines()[0]
    assert first == f"#!{sys.executable}"
    assert home_mod.BIN_MODES["qmail-queue"] == 0o711
