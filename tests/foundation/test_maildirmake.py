"""maildirmake: modes, usage and error lines as maildirmake.c gives them."""

from __future__ import annotations

import errno
import io
import mailbox
import os
import stat
from pathlib import Path

import pytest

from server.programs import ProgramContext, run
from server.runtime import virtual_runtime
from server.strerr import error_str

from .helpers import run_program


def test_makes_a_maildir(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "Maildir"
    result = run_program(home, "maildirmake", str(target))
    assert (result.code, result.out, result.err) == (0, b"", b"")
    for path in (target, target / "tmp", target / "new", target / "cur"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    md = mailbox.Maildir(target, create=False)
    assert len(md) == 0


def test_usage(home: Path) -> None:
    result = run_program(home, "maildirmake")
    assert result.code == 100
    assert result.err == b"maildirmake: usage: maildirmake name\n"


def test_refuses_existing(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "Maildir"
    target.mkdir()
    result = run_program(home, "maildirmake", str(target))
    assert result.code == 111
    assert (
        result.err
        == f"maildirmake: fatal: unable to mkdir {target}: file already exists\n".encode()
    )


def test_missing_parent(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "no" / "Maildir"
    result = run_program(home, "maildirmake", str(target))
    assert result.code == 111
    assert (
        result.err
        == f"maildirmake: fatal: unable to mkdir {target}: file does not exist\n".encode()
    )


def test_subdirectory_failure_names_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # qmail reports a failing subdirectory as "DIR/new" (maildirmake.c).
    real_mkdir = os.mkdir

    def mkdir(path: str, mode: int = 0o777) -> None:
        if path.endswith("new"):
            raise PermissionError(errno.EACCES, "denied")
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", mkdir)
    target = tmp_path / "M"
    result = run_program(home, "maildirmake", str(target))
    assert result.code == 111
    assert (
        result.err == f"maildirmake: fatal: unable to mkdir {target}/new: access denied\n".encode()
    )


def test_error_str_texts() -> None:
    assert error_str(errno.EEXIST) == "file already exists"
    assert error_str(errno.ENOENT) == "file does not exist"
    assert error_str(errno.EACCES) == "access denied"
    assert error_str(errno.EAGAIN) == "temporary failure"  # EWOULDBLOCK == EAGAIN
    assert error_str(99999) == "unknown error"


def test_relative_to_context_cwd(home: Path, tmp_path: Path) -> None:
    runtime, _ = virtual_runtime()
    err = io.BytesIO()
    ctx = ProgramContext(home=home, runtime=runtime, stderr=err, cwd=tmp_path)
    code = run("maildirmake", ["maildirmake", "Maildir"], {}, io.BytesIO(), io.BytesIO(), ctx)
    assert code == 0
    assert (tmp_path / "Maildir" / "cur").is_dir()
    code = run("maildirmake", ["maildirmake", "Maildir"], {}, io.BytesIO(), io.BytesIO(), ctx)
    assert err.getvalue() == b"maildirmake: fatal: unable to mkdir Maildir: file already exists\n"
