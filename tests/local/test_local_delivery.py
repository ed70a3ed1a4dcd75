"""qmail-local: Maildir, mbox, |command, forwards, the checks and their texts."""

from __future__ import annotations

import mailbox
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.local import replies
from server.local.program import Delivery, LocalArgs, Outcome, parse_argv
from server.runtime import Crash, FileOps, Runtime, StrPath

from .conftest import FakeQueue, make_user_home

MESSAGE = b"From: alice@far.example\nSubject: hi\n\nFrom the start\n>From quoted\nbody\n"


def deliver(
    rt: Runtime,
    home: Path,
    *,
    local: str = "joe",
    dash: str = "",
    ext: str = "",
    sender: str = "alice@far.example",
    message: bytes = MESSAGE,
    aliasempty: str = "./Maildir/",
    queue: FakeQueue | None = None,
    user: str = "joe",
    timeout: float | None = 20.0,
    flagdoit: bool = True,
) -> Outcome:
    args = LocalArgs(
        user=user,
        homedir=str(home),
        local=local,
        dash=dash,
        ext=ext,
        host="example.org",
        sender=sender,
        aliasempty=aliasempty,
        flagdoit=flagdoit,
    )
    return Delivery(
        args=args,
        message=message,
        runtime=rt,
        env={"PATH": "/usr/bin:/bin"},
        forwarder=queue or FakeQueue(),
        uid=501,
        program_timeout=timeout,
    ).run()


def test_default_delivery_into_maildir(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    out = deliver(rt, home)
    assert out == Outcome(code=0, output=b"did 1+0+0\n")
    (name,) = os.listdir(home / "Maildir" / "new")
    assert name == f"{rt.now()}.1000.mx.example.org"
    assert os.listdir(home / "Maildir" / "tmp") == []
    raw = (home / "Maildir" / "new" / name).read_bytes()
    assert raw == (b"Return-Path: <alice@far.example>\nDelivered-To: joe@example.org\n" + MESSAGE)
    assert (os.stat(home / "Maildir" / "new" / name).st_mode & 0o777) == 0o600
    box = mailbox.Maildir(home / "Maildir", create=False)
    (msg,) = list(box)
    assert msg["Delivered-To"] == "joe@example.org"
    assert msg["Subject"] == "hi"


def test_maildir_names_are_unique_per_delivery(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    deliver(rt, home)
    deliver(rt, home)
    assert len(os.listdir(home / "Maildir" / "new")) == 2


def test_mbox_from_line_quoting_and_blank_line(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "./Mailbox\n"})
    assert deliver(rt, home, message=b"Subject: x\n\nFrom me\nlast").code == 0
    assert deliver(rt, home, sender="").code == 0
    raw = (home / "Mailbox").read_bytes()
    # 1_700_000_000 is Tue Nov 14 22:13:20 2023 UTC.
    first = (
        b"From alice@far.example Tue Nov 14 22:13:20 2023\n"
        b"Return-Path: <alice@far.example>\nDelivered-To: joe@example.org\n"
        b"Subject: x\n\n>From me\nlast\n\n"
    )
    assert raw.startswith(first)
    second = raw[len(first) :]
    assert second.startswith(b"From MAILER-DAEMON Tue Nov 14 22:13:20 2023\nReturn-Path: <>\n")
    assert b"\n>From the start\n>>From quoted\n" in second
    box = mailbox.mbox(home / "Mailbox", create=False)
    try:
        msgs = list(box)
        assert len(msgs) == 2
        assert msgs[1]["Subject"] == "hi"
    finally:
        box.close()


def test_mbox_day_of_month_has_two_digits() -> None:
    from server.local.mbox import myctime, ufline

    assert myctime(1_699_142_400) == "Sun Nov 05 00:00:00 2023\n"
    assert ufline("a b\tc", 0) == b"From a-b-c Thu Jan 01 00:00:00 1970\n"


def test_program_gets_environment_and_message(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(
        tmp_path,
        "joe",
        {
            "-list-default": "|env | sort > envdump; cat > msgdump; echo done\n",
            "-list-foo:bar-owner": "",  # the owner file names the whole ext
        },
    )
    out = deliver(rt, home, local="joe-list-Foo.Bar", dash="-", ext="list-Foo.Bar")
    assert out == Outcome(code=0, output=b"done\ndid 0+0+1\n")
    assert (home / "msgdump").read_bytes() == MESSAGE
    env = dict(
        line.split("=", 1) for line in (home / "envdump").read_text().split("\n") if "=" in line
    )
    assert env["SENDER"] == "alice@far.example"
    assert env["RECIPIENT"] == "joe-list-Foo.Bar@example.org"
    assert env["USER"] == "joe" and env["HOME"] == str(home)
    assert env["LOCAL"] == "joe-list-Foo.Bar"
    assert env["HOST"] == "example.org" and env["HOST2"] == "example" and env["HOST4"] == "example"
    assert env["EXT"] == "list-Foo.Bar" and env["EXT2"] == "Foo.Bar" and env["EXT3"] == ""
    assert env["DEFAULT"] == "Foo.Bar"
    assert env["DTLINE"] == "Delivered-To: joe-list-Foo.Bar@example.org"  # newline cut by split
    assert env["RPLINE"] == "Return-Path: <alice@far.example>"
    assert env["UFLINE"] == "From alice@far.example Tue Nov 14 22:13:20 2023"
    assert env["NEWSENDER"] == "joe-list-Foo.Bar-owner@example.org"


@pytest.mark.parametrize(
    ("code", "want"),
    [
        (0, 0),
        (99, 0),
        (100, 100),
        (64, 100),
        (65, 100),
        (70, 100),
        (76, 100),
        (77, 100),
        (78, 100),
        (112, 100),
        (111, 111),
        (1, 111),
        (75, 111),
    ],
)
def test_program_exit_codes(rt: Runtime, tmp_path: Path, code: int, want: int) -> None:
    home = make_user_home(tmp_path, "joe", {"": f"|echo said {code}; exit {code}\n"})
    out = deliver(rt, home)
    assert out.code == want
    expected = b"said %d\n" % code + (b"did 0+0+1\n" if want == 0 else b"")
    assert out.output == expected


def test_exit_99_skips_the_rest(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "&first@a\n|exit 99\n./Maildir/\n&second@b\n"})
    queue = FakeQueue()
    out = deliver(rt, home, queue=queue)
    assert out.output == b"did 0+1+1\nqp 4242\n"
    assert os.listdir(home / "Maildir" / "new") == []
    assert [c[2] for c in queue.calls] == [["first@a"]]


def test_program_killed_by_signal_is_child_crashed(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "|kill -9 $$\n"})
    assert deliver(rt, home) == Outcome(code=111, output=b"Aack, child crashed. (#4.3.0)\n")


def test_program_that_hangs_is_killed_at_the_limit(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "|echo start; sleep 30\n"})
    out = deliver(rt, home, timeout=0.3)
    assert out == Outcome(code=111, output=b"start\nAack, child crashed. (#4.3.0)\n")


def test_forwarding_rewrites_sender_with_owner_files(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(
        tmp_path,
        "joe",
        {"-l": "&a@x.example\nb@y.example\n", "-l-owner": "", "-l-owner-default": ""},
    )
    queue = FakeQueue()
    out = deliver(rt, home, local="joe-l", dash="-", ext="l", queue=queue)
    assert out == Outcome(code=0, output=b"did 0+2+0\nqp 4242\n")
    ((data, sender, recips, invoker, _env),) = queue.calls
    assert data == b"Delivered-To: joe-l@example.org\n" + MESSAGE
    assert sender == "joe-l-owner-@example.org-@[]"
    assert recips == ["a@x.example", "b@y.example"]
    assert invoker == 501


def test_forward_keeps_bounce_sender_and_alias_invoker(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(
        tmp_path, "alias", {"-postmaster": "&joe@example.org\n", "-postmaster-owner": ""}
    )
    queue = FakeQueue()
    deliver(
        rt,
        home,
        user="alias",
        local="postmaster",
        dash="-",
        ext="postmaster",
        sender="",
        queue=queue,
    )
    assert queue.calls[0][1] == "" and queue.calls[0][3] == "alias"


@pytest.mark.parametrize(
    ("error", "code"), [("Zqq temporary problem (#4.3.0)", 111), ("Dbad (#5.0.0)", 100)]
)
def test_forward_failure(rt: Runtime, tmp_path: Path, error: str, code: int) -> None:
    home = make_user_home(tmp_path, "joe", {"": "&a@b\n"})
    out = deliver(rt, home, queue=FakeQueue(error=error))
    assert out == Outcome(code=code, output=f"Unable to forward message: {error[1:]}.\n".encode())


def test_loop_detection(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    looped = b"Delivered-To: joe@example.org\n" + MESSAGE
    assert deliver(rt, home, message=looped) == Outcome(
        code=100, output=(replies.LOOPING + "\n").encode()
    )
    # The same line in the body is not a loop.
    body = MESSAGE + b"Delivered-To: joe@example.org\n"
    assert deliver(rt, home, message=body).code == 0


def test_no_mailbox_with_dash(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    out = deliver(rt, home, local="joe-x", dash="-", ext="x")
    assert out == Outcome(code=100, output=b"Sorry, no mailbox here by that name. (#5.1.1)\n")


def test_extension_uses_most_specific_default(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"-foo-default": "./foo/\n", "-default": "./Maildir/\n"})
    for sub in ("tmp", "new", "cur"):
        (home / "foo" / sub).mkdir(parents=True)
    assert deliver(rt, home, local="joe-foo-bar", dash="-", ext="foo-bar").code == 0
    assert len(os.listdir(home / "foo" / "new")) == 1
    assert deliver(rt, home, local="joe-other", dash="-", ext="other").code == 0
    assert len(os.listdir(home / "Maildir" / "new")) == 1


def test_missing_home_defers(rt: Runtime, tmp_path: Path) -> None:
    out = deliver(rt, tmp_path / "gone")
    text = f"Unable to switch to {tmp_path / 'gone'}: file does not exist. (#4.3.0)\n"
    assert out == Outcome(code=111, output=text.encode())


def test_sticky_home_defers(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    os.chmod(home, 0o1755)
    assert deliver(rt, home) == Outcome(code=111, output=(replies.HOME_STICKY + "\n").encode())
    # qmail-local -n only warns.
    out = deliver(rt, home, flagdoit=False)
    assert out.output == b"Warning: home directory is sticky.\nmaildir ./Maildir/\ndid 1+0+0\n"


def test_writable_home_and_dotqmail_defer(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "./Maildir/\n"})
    os.chmod(home / ".qmail", 0o666)
    assert deliver(rt, home).output == b"Uh-oh: .qmail file is writable. (#4.7.0)\n"
    os.chmod(home, 0o757)
    assert deliver(rt, home).output == b"Uh-oh: home directory is writable. (#4.7.0)\n"


def test_executable_dotqmail_is_forward_only(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "./Maildir/\n"})
    os.chmod(home / ".qmail", 0o744)
    assert deliver(rt, home).output == (replies.FILE_WITH_X + "\n").encode()
    (home / ".qmail").write_text("+list\n|true\n")
    os.chmod(home / ".qmail", 0o644)
    assert deliver(rt, home).output == (replies.PROG_WITH_X + "\n").encode()


def test_blank_first_line_and_comments(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "\n./Maildir/\n"})
    assert deliver(rt, home).output == (replies.FIRST_LINE_BLANK + "\n").encode()
    (home / ".qmail").write_text("# only\n\n# comments\n")
    assert deliver(rt, home) == Outcome(code=0, output=b"did 0+0+0\n")


def test_empty_dotqmail_means_default_delivery(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": ""})
    assert deliver(rt, home, aliasempty="./Mailbox").code == 0
    assert (home / "Mailbox").exists()


def test_maildir_not_a_directory_is_chdir_failure(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "./Nope/\n"})
    assert deliver(rt, home).output == b"Unable to chdir to maildir. (#4.2.1)\n"


def test_unwritable_maildir_defers(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    os.rmdir(home / "Maildir" / "tmp")
    (home / "Maildir" / "tmp").write_text("not a directory")
    assert deliver(rt, home) == Outcome(
        code=111, output=b"Temporary error on maildir delivery. (#4.3.0)\n"
    )


class FullDisk(FileOps):
    def write_new(self, path: StrPath, data: bytes, mode: int = 0o644) -> int:
        raise OSError(28, "No space left on device")


class CrashAtLink(FileOps):
    def link(self, src: StrPath, dst: StrPath) -> None:
        raise Crash("down")


def test_full_disk_defers_and_leaves_no_tmp_file(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    rt.fileops = FullDisk()
    out = deliver(rt, home)
    assert out.output == b"Temporary error on maildir delivery. (#4.3.0)\n"
    assert os.listdir(home / "Maildir" / "tmp") == []


def test_crash_before_link_leaves_message_only_in_tmp(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe")
    rt.fileops = CrashAtLink()
    with pytest.raises(Crash):
        deliver(rt, home)
    assert os.listdir(home / "Maildir" / "new") == []
    assert len(os.listdir(home / "Maildir" / "tmp")) == 1


def test_unopenable_mbox_defers(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "./no/such/Mailbox\n"})
    assert deliver(rt, home).output == (
        b"Unable to open ./no/such/Mailbox: file does not exist. (#4.2.1)\n"
    )


def test_dry_run_says_what_it_would_do(rt: Runtime, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "joe", {"": "./Maildir/\n./mbox\n|prog a\n&x@y\n"})
    out = deliver(rt, home, flagdoit=False)
    assert (
        out.output == b"maildir ./Maildir/\nmbox ./mbox\nprogram prog a\nforward x@y\ndid 2+1+1\n"
    )
    assert os.listdir(home / "Maildir" / "new") == []


def test_argv() -> None:
    args = parse_argv(["qmail-local", "--", "u", "/h", "l", "-", "e", "d", "s", "./Maildir/"])
    assert args.flagdoit and args.ext == "e" and args.aliasempty == "./Maildir/"
    assert not parse_argv(["qmail-local", "-n", "u", "/h", "l", "", "", "d", "", "x"]).flagdoit


def test_mbox_lock_held_too_long_defers(tmp_path: Path) -> None:
    import fcntl

    from server.errors import TempFail
    from server.local.locking import lock_ex

    path = tmp_path / "box"
    with path.open("wb") as holder, path.open("ab") as other:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        with pytest.raises(TempFail) as info:
            lock_ex(other.fileno(), seconds=0.1)
    assert info.value.text == "File has been locked for 30 seconds straight. (#4.3.0)"


def test_mbox_locker_is_used_and_slow_lock_text_reaches_the_report(
    rt: Runtime, tmp_path: Path
) -> None:
    from server.errors import TempFail
    from server.local.mbox import deliver as mbox_deliver

    def stuck(fd: int) -> bool:
        raise TempFail(replies.SLOWLOCK)

    with pytest.raises(TempFail):
        mbox_deliver(tmp_path / "box", "./box", b"", MESSAGE, stuck)
    assert (tmp_path / "box").read_bytes() == b""


def test_bin_qmail_local_main_delivers(rt: Runtime, tmp_path: Path) -> None:
    import io

    from server.local.program import main
    from server.programs import ProgramContext

    home = make_user_home(tmp_path, "joe", {"-x": "./Maildir/\n"})
    ctx = ProgramContext(home=tmp_path, runtime=rt, stderr=io.BytesIO())
    out = io.BytesIO()
    argv = [
        "qmail-local",
        "--",
        "joe",
        str(home),
        "joe-x",
        "-",
        "x",
        "example.org",
        "",
        "./Mailbox",
    ]
    assert main(argv, {}, io.BytesIO(MESSAGE), out, ctx) == 0
    assert out.getvalue() == b"did 1+0+0\n"
    argv[5:7] = ["-", "y"]
    assert main(argv, {}, io.BytesIO(MESSAGE), out, ctx) == 100
    assert ctx.stderr.getvalue() == b"Sorry, no mailbox here by that name. (#5.1.1)\n"  # type: ignore[attr-defined]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_any_dotqmail_gives_a_qmail_outcome(
    rt: Runtime, tmp_path_factory: pytest.TempPathFactory, text: bytes
) -> None:
    """Odd .qmail files never crash qmail-local (-n: nothing is executed)."""
    base = tmp_path_factory.mktemp("odd")
    home = make_user_home(base, "joe")
    (home / ".qmail").write_bytes(text)
    os.chmod(home / ".qmail", 0o644)
    out = deliver(rt, home, flagdoit=False)
    assert out.code in (0, 111)
    assert out.output.endswith(b"\n")


def test_bin_qmail_local_process_gives_commands_the_rewound_queue_file(
    tmp_path: Path, qhome: Path
) -> None:
    import subprocess
    import sys

    home = make_user_home(tmp_path, "joe", {"": "|cat > one\n|cat > two\n./Maildir/\n"})
    mess = tmp_path / "mess"
    mess.write_bytes(MESSAGE)
    argv = ["--", "joe", str(home), "joe", "", "", "example.org", "a@b", "./Maildir/"]
    with mess.open("rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "server", "--home", str(qhome), "qmail-local", *argv],
            stdin=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert (proc.returncode, proc.stdout) == (0, b"did 1+0+2\n")
    assert (home / "one").read_bytes() == (home / "two").read_bytes() == MESSAGE
