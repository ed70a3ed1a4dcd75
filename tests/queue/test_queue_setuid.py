"""A split home's qmail-queue: setuid qmailq whoever runs it, worded by the real uid.

Each test runs ``HOME/bin/qmail-queue`` (the compiled wrapper) as another
user, as qmail-smtpd under ``tcpserver -u qmaild`` or a local user's mail
program would, and looks at what reached the queue. They skip with the
reason when this is not root or qmail's users are missing (``.ci/qmail-users``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server.queue import wrapper
from tests.splithome import Caller, SplitHome, make_split_home, public_dir, run_queue

__all__ = ["public_dir"]  # a fixture, used by name

MESSAGE = b"Subject: setuid\n\nbody\n"
ENVELOPE = b"Fa@example.org\0Tb@example.org\0\0"
NOBODY = "nobody"


@pytest.fixture
def split(public_dir: Path) -> SplitHome:
    return make_split_home(public_dir)


def everything(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry below ``root``: (inode, size)."""
    found = {}
    for path in root.rglob("*"):
        st = path.lstat()
        found[path.relative_to(root).as_posix()] = (st.st_ino, st.st_size)
    return found


def new_entries(before: dict[str, tuple[int, int]], root: Path) -> list[str]:
    after = everything(root)
    return sorted(p for p, v in after.items() if before.get(p) != v)


def queued(split: SplitHome) -> tuple[Path, bytes, bytes]:
    """The one message in the queue: its mess/ file, its text, its todo/ file's bytes."""
    queue = split.home / "queue"
    [mess] = [p for p in (queue / "mess").rglob("*") if p.is_file()]
    todo = queue / "todo" / mess.name
    return mess, mess.read_bytes(), todo.read_bytes()


def run_as(split: SplitHome, user: str, **kw: object) -> int:
    program = split.home / "bin" / "qmail-queue"
    return run_queue(program, Caller.named(user), MESSAGE, ENVELOPE, **kw)  # type: ignore[arg-type]


def test_nobody_queues_as_qmailq_invoked_by_uid(split: SplitHome) -> None:
    nobody = Caller.named(NOBODY)
    assert run_as(split, NOBODY) == 0
    mess, text, todo = queued(split)
    assert re.match(rb"Received: \(qmail \d+ invoked by uid %d\); " % nobody.uid, text)
    assert text.endswith(b"\n" + MESSAGE)
    assert todo.startswith(b"u%d\0p" % nobody.uid)
    queue = split.home / "queue"
    for path in (mess, queue / "todo" / mess.name, queue / "intd" / mess.name):
        st = path.stat()
        assert (path.name, st.st_uid, st.st_mode & 0o777) == (mess.name, split.ids.qmailq, 0o644)


@pytest.mark.parametrize(
    ("user", "words"),
    [("qmaild", b"from network"), ("qmails", b"for bounce"), ("alias", b"by alias")],
)
def test_qmails_users_by_their_real_uid(split: SplitHome, user: str, words: bytes) -> None:
    assert run_as(split, user) == 0
    _, text, todo = queued(split)
    assert re.match(rb"Received: \(qmail \d+ invoked " + words + rb"\); ", text)
    assert todo.startswith(b"u%d\0" % Caller.named(user).uid)


def test_the_invoker_variable_of_a_caller_is_ignored(split: SplitHome) -> None:
    env = {"PATH": "/usr/bin:/bin", "QMAILSIM_INVOKER": "network"}
    assert run_as(split, NOBODY, env=env) == 0
    _, text, todo = queued(split)
    assert b"invoked by uid %d)" % Caller.named(NOBODY).uid in text
    assert todo.startswith(b"u%d\0" % Caller.named(NOBODY).uid)


def test_python_variables_of_a_caller_do_not_reach_qmailq(
    split: SplitHome, public_dir: Path
) -> None:
    trap = public_dir / "trap"
    trap.mkdir(mode=0o777)
    os.chmod(trap, 0o777)
    sprung = trap / "sprung"
    bait = f"open({str(sprung)!r}, 'w').write('ran as ' + str(__import__('os').geteuid()))\n"
    (trap / "sitecustomize.py").write_text(bait)
    (trap / "usercustomize.py").write_text(bait)
    (trap / "startup.py").write_text(bait)
    (trap / "server").mkdir()
    (trap / "server" / "__init__.py").write_text(bait)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(trap),
        "PYTHONSTARTUP": str(trap / "startup.py"),
        "PYTHONINSPECT": "1",
        "PYTHONHOME": str(trap),
        "PYTHONUSERBASE": str(trap),
        "LD_PRELOAD": str(trap / "nothing.so"),
    }
    assert run_as(split, NOBODY, env=env, cwd=trap) == 0
    assert not sprung.exists()
    assert sorted(p.name for p in trap.iterdir()) == [
        "server",
        "sitecustomize.py",
        "startup.py",
        "usercustomize.py",
    ]
    assert queued(split)[1].endswith(MESSAGE)


def test_a_caller_can_write_nothing_but_a_queued_message(
    split: SplitHome, public_dir: Path
) -> None:
    nobody = Caller.named(NOBODY)
    before = everything(split.home)
    # Directly, nobody cannot even look into the queue.
    probe = subprocess.run(
        ["sh", "-c", f"echo x > {split.home}/queue/todo/1"],
        user=nobody.uid,
        group=nobody.gid,
        extra_groups=[],
        capture_output=True,
        check=False,
    )
    assert probe.returncode != 0
    # Arguments are ignored: no --home, no other program.
    args = ["--home", str(public_dir), "qmail-send"]
    assert run_as(split, NOBODY, args=args, cwd=public_dir) == 0
    mess, _, _ = queued(split)
    n = mess.name
    assert new_entries(before, split.home) == sorted(
        [f"queue/intd/{n}", f"queue/mess/{mess.parent.name}/{n}", f"queue/todo/{n}"]
    )
    assert sorted(p.name for p in public_dir.iterdir()) == ["qmail"]


def test_a_safe_tz_reaches_the_date_localtime_patch(public_dir: Path) -> None:
    split = make_split_home(public_dir, patches=["date-localtime"])
    env = {"PATH": "/usr/bin:/bin", "TZ": "EST5EDT"}
    assert run_as(split, NOBODY, env=env) == 0
    assert re.match(rb"Received: [^\n]* -0[45]00\n", queued(split)[1])


@pytest.mark.parametrize("tz", ["/etc/localtime", ":/etc/localtime", "../../etc/x", "A;B"])
def test_a_tz_that_names_a_file_does_not_reach(public_dir: Path, tz: str) -> None:
    split = make_split_home(public_dir, patches=["date-localtime"])
    env = {"PATH": "/usr/bin:/bin", "TZ": tz}
    assert run_as(split, NOBODY, env=env) == 0
    assert re.match(rb"Received: [^\n]* \+0000\n", queued(split)[1])


def test_a_closed_envelope_descriptor_is_exit_54(split: SplitHome) -> None:
    nobody = Caller.named(NOBODY)
    before = everything(split.home / "queue")
    proc = subprocess.run(
        ["sh", "-c", 'exec "$0" >&-', str(split.home / "bin" / "qmail-queue")],
        input=MESSAGE,
        user=nobody.uid,
        group=nobody.gid,
        extra_groups=[],
        check=False,
    )
    assert proc.returncode == 54
    assert new_entries(before, split.home / "queue") == []


def test_a_missing_interpreter_is_exit_111_with_nothing_queued(split: SplitHome) -> None:
    assert wrapper.install(split.home, split.ids, "/nonexistent/python3") is None
    before = everything(split.home / "queue")
    assert run_as(split, NOBODY) == 111
    assert new_entries(before, split.home / "queue") == []


def test_code_that_cannot_be_imported_is_exit_111(
    split: SplitHome, public_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = public_dir / "no-code-here"
    empty.mkdir()
    monkeypatch.setattr(wrapper, "package_dir", lambda: empty)
    assert wrapper.install(split.home, split.ids, sys.executable) is None
    before = everything(split.home / "queue")
    assert run_as(split, NOBODY) == 111
    assert new_entries(before, split.home / "queue") == []


def test_the_wrapper_is_compiled_with_the_paths_as_c_strings() -> None:
    assert wrapper.c_string("/var/qmail") == '"/var/qmail"'
    assert wrapper.c_string('/a b"\\') == '"/a\\040b\\042\\134"'
    cmd = wrapper.compile_command("cc", Path("s.c"), Path("o"), "/usr/bin/python3", Path("/q"))
    assert '-DQS_PYTHON="/usr/bin/python3"' in cmd and '-DQS_HOME="/q"' in cmd
    assert f"-DQS_LIB={wrapper.c_string(str(wrapper.package_dir()))}" in cmd


def test_the_wrapper_compiles_without_a_warning(tmp_path: Path) -> None:
    cc = shutil.which(wrapper.COMPILER)
    if cc is None:
        pytest.skip(f"no C compiler ({wrapper.COMPILER})")
    source = Path(wrapper.__file__).parents[1] / "data" / wrapper.SOURCE
    for std in ([], ["-std=c99", "-pedantic"]):
        cmd = wrapper.compile_command(cc, source, tmp_path / "q", "/usr/bin/python3", tmp_path)
        proc = subprocess.run(
            [*cmd, *std, "-Wextra", "-Werror"], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
