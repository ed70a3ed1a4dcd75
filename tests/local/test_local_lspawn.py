"""qmail-lspawn: LocalChannel's reports and bin/qmail-lspawn's pipe protocol."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server import spawnpipe
from server.local import newu, replies
from server.local.lspawn import LocalChannel, report, truncate
from server.programs import ProgramContext
from server.spawn import DeliveryJob
from server.spawnpipe import AUTO_SPAWN, Command, CommandParser, check_command

from .conftest import FakeQueue, hand_over, make_user_home

MESSAGE = b"Subject: hello\n\nbody\n"


def assign(ctx: ProgramContext, text: str) -> None:
    (ctx.home / "users" / "assign").write_text(text)
    newu.build(ctx.home)


def job(ctx: ProgramContext, recipient: str, sender: str = "a@far.example") -> DeliveryJob:
    path = ctx.home / "queue" / "mess" / "0" / "23"
    path.write_bytes(MESSAGE)
    return DeliveryJob(msgid=23, message=path, sender=sender, recipient=recipient)


def test_report_table() -> None:
    assert report(0, b"did 1+0+0\n") == b"Kdid 1+0+0\n"
    for code in (111, 71, 74, 75):
        assert report(code, b"x\n") == b"Zx\n"
    for code in (100, 1, 99):
        assert report(code, b"x\n") == b"Dx\n"
    assert report(None, b"ignored") == b"Zqmail-local crashed.\n"
    assert report(replies.QLX_NOALIAS, b"") == b"ZUnable to find alias user!\n"
    assert report(replies.QLX_EXECHARD, b"") == b"DUnable to run qmail-local.\n"
    assert report(replies.QLX_CDB, b"") == b"ZTrouble reading users/cdb in qmail-lspawn.\n"
    assert report(0, b"a\0b") == b"Ka"


def test_long_reports_are_cut() -> None:
    cut = truncate(b"x" * 5000)
    assert cut == b"x" * 2966 + b"\nError report too long, sorry.\n"
    assert truncate(b"y" * 3000) == b"y" * 3000


def test_assigned_user_gets_maildir(ctx: ProgramContext, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "bob")
    assign(ctx, f"=bob:bob:1001:1001:{home}:::\n.\n")
    channel = LocalChannel(ctx)
    assert channel.deliver(job(ctx, "bob@mx.example.org")) == b"Kdid 1+0+0\n"
    box = mailbox.Maildir(home / "Maildir", create=False)
    (msg,) = list(box)
    assert msg["Delivered-To"] == "bob@mx.example.org"
    assert msg["Return-Path"] == "<a@far.example>"


def test_default_delivery_mbox(ctx: ProgramContext, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "bob")
    assign(ctx, f"=bob:bob:1001:1001:{home}:::\n.\n")
    channel = LocalChannel(ctx, "./Mailbox")
    assert channel.deliver(job(ctx, "bob@mx.example.org")) == b"Kdid 1+0+0\n"
    assert (home / "Mailbox").read_bytes().startswith(b"From a@far.example ")


def test_unknown_user_without_alias_file_bounces(ctx: ProgramContext) -> None:
    got = LocalChannel(ctx).deliver(job(ctx, "nobody-here@mx.example.org"))
    assert got == b"DSorry, no mailbox here by that name. (#5.1.1)\n"


def test_postmaster_goes_to_alias(ctx: ProgramContext) -> None:
    (ctx.home / "alias" / ".qmail-postmaster").write_text("./Maildir/\n")
    for sub in ("tmp", "new", "cur"):
        (ctx.home / "alias" / "Maildir" / sub).mkdir(parents=True)
    os.chmod(ctx.home / "alias", 0o755)  # hier.c makes it 02755: not sticky, fine
    got = LocalChannel(ctx).deliver(job(ctx, "Postmaster@mx.example.org", sender=""))
    assert got == b"Kdid 1+0+0\n"
    (name,) = os.listdir(ctx.home / "alias" / "Maildir" / "new")
    data = (ctx.home / "alias" / "Maildir" / "new" / name).read_bytes()
    assert data.startswith(b"Return-Path: <>\nDelivered-To: Postmaster@mx.example.org\n")


def test_alias_forward_is_invoked_by_alias(ctx: ProgramContext) -> None:
    (ctx.home / "alias" / ".qmail-root").write_text("&admin@example.net\n")
    queue = FakeQueue()
    got = LocalChannel(ctx, forwarder=queue).deliver(job(ctx, "root@mx.example.org"))
    assert got == b"Kdid 0+1+0\nqp 4242\n"
    assert queue.calls[0][2:4] == (["admin@example.net"], "alias")


def test_assigned_uid_zero_is_refused(ctx: ProgramContext, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "root")
    assign(ctx, f"=boss:root:0:0:{home}:::\n.\n")
    got = LocalChannel(ctx).deliver(job(ctx, "boss@mx.example.org"))
    assert got == b"ZNot allowed to perform deliveries as root.\n"


def test_empty_local_part_is_success_without_delivery(ctx: ProgramContext) -> None:
    assert LocalChannel(ctx).deliver(job(ctx, "@mx.example.org")) == b"K"


def test_recipient_without_at(ctx: ProgramContext) -> None:
    got = LocalChannel(ctx).deliver(job(ctx, "bob"))
    assert got == b"DSorry, address must include host name. (#5.1.3)\n"


def test_missing_home_defers(ctx: ProgramContext, tmp_path: Path) -> None:
    assign(ctx, f"=bob:bob:1001:1001:{tmp_path / 'nohome'}:::\n.\n")
    got = LocalChannel(ctx).deliver(job(ctx, "bob@mx.example.org"))
    assert (
        got
        == f"ZUnable to switch to {tmp_path / 'nohome'}: file does not exist. (#4.3.0)\n".encode()
    )


def test_program_timeout_is_injected(ctx: ProgramContext, tmp_path: Path) -> None:
    home = make_user_home(tmp_path, "bob", {"": "|sleep 30\n"})
    assign(ctx, f"=bob:bob:1001:1001:{home}:::\n.\n")
    got = LocalChannel(ctx, program_timeout=0.2).deliver(job(ctx, "bob@mx.example.org"))
    assert got == b"ZAack, child crashed. (#4.3.0)\n"


def test_corrupt_users_cdb(ctx: ProgramContext) -> None:
    (ctx.home / "users" / "cdb").write_bytes(b"\0" * 10)
    got = LocalChannel(ctx).deliver(job(ctx, "bob@mx.example.org"))
    assert got == b"ZTrouble reading users/cdb in qmail-lspawn.\n"


def test_unreadable_message(ctx: ProgramContext) -> None:
    missing = DeliveryJob(msgid=1, message=ctx.home / "nope", sender="", recipient="a@b")
    assert LocalChannel(ctx).deliver(missing) == b"Zqmail-spawn unable to open message. (#4.3.0)\n"


# --- the pipe protocol -------------------------------------------------------


def encode(cmd: Command) -> bytes:
    return bytes([cmd.delnum]) + b"\0".join((cmd.messid, cmd.sender, cmd.recipient)) + b"\0"


_nonul = st.binary(max_size=20).map(lambda b: b.replace(b"\0", b""))
_commands = st.lists(
    st.builds(Command, delnum=st.integers(0, 255), messid=_nonul, sender=_nonul, recipient=_nonul),
    max_size=5,
)


@given(_commands)
def test_parser_whole_and_byte_at_a_time(cmds: list[Command]) -> None:
    data = b"".join(encode(c) for c in cmds)
    assert CommandParser().feed(data) == cmds
    parser = CommandParser()
    got = [c for i in range(len(data)) for c in parser.feed(data[i : i + 1])]
    assert got == cmds


def _bytewise(reads: list[bytes]) -> list[Command]:
    """spawn.c getcmd() a byte at a time: what CommandParser.feed must agree with."""
    done: list[Command] = []
    stage, delnum, fields = 0, 0, [bytearray(), bytearray(), bytearray()]
    for byte in b"".join(reads):
        if stage == 0:
            delnum, fields, stage = byte, [bytearray(), bytearray(), bytearray()], 1
        elif byte:
            fields[stage - 1].append(byte)
        elif stage < 3:
            stage += 1
        else:
            messid, sender, recip = (bytes(f) for f in fields)
            done.append(Command(delnum=delnum, messid=messid, sender=sender, recipient=recip))
            stage = 0
    return done


@given(st.binary(max_size=80), st.lists(st.integers(1, 12), max_size=20))
def test_parser_agrees_with_the_byte_loop_however_the_reads_fall(
    data: bytes, cuts: list[int]
) -> None:
    reads, pos = [], 0
    for cut in [*cuts, len(data)]:
        reads.append(data[pos : pos + cut])
        pos += cut
    parser = CommandParser()
    assert [c for read in reads for c in parser.feed(read)] == _bytewise(reads)


@given(_commands, st.binary(max_size=30))
def test_parser_keeps_trailing_partial_command(cmds: list[Command], rest: bytes) -> None:
    data = b"".join(encode(c) for c in cmds)
    parser = CommandParser()
    first = parser.feed(data + rest)
    assert first[: len(cmds)] == cmds


def test_check_command() -> None:
    ok = Command(delnum=1, messid=b"5/123", sender=b"", recipient=b"a@b")
    assert check_command(ok, set()) is None
    assert check_command(ok, {1}) == spawnpipe.DELNUM_USED
    bad = Command(delnum=1, messid=b"/5", sender=b"", recipient=b"a@b")
    assert check_command(bad, set()) == spawnpipe.MESSID_NONNUMERIC
    assert check_command(Command(delnum=200, messid=b"1", sender=b"", recipient=b"a@b"), set())
    assert check_command(Command(delnum=1, messid=b"", sender=b"", recipient=b"a@b"), set()) == (
        spawnpipe.MESSID_SHORT
    )


def test_bin_qmail_lspawn_speaks_the_pipe_protocol(ctx: ProgramContext, tmp_path: Path) -> None:
    home = hand_over(make_user_home(tmp_path, "bob"), 1001, 1001)
    assign(ctx, f"=bob:bob:1001:1001:{home}:::\n.\n")
    (ctx.home / "queue" / "mess" / "0" / "23").write_bytes(MESSAGE)
    commands = b"\x05" + b"0/23\0a@far.example\0bob@mx.example.org\0"
    commands += b"\x06" + b"x\0\0bob@mx.example.org\0"
    proc = subprocess.run(
        [sys.executable, "-m", "server", "--home", str(ctx.home), "qmail-lspawn", "./Maildir/"],
        input=commands,
        capture_output=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout[:1] == bytes([AUTO_SPAWN])
    replies_ = proc.stdout[1:].split(b"\0")[:-1]
    assert sorted(replies_) == sorted(
        [b"\x05Kdid 1+0+0\n", b"\x06DInternal error: messid has nonnumerics. (#5.3.5)\n"]
    )
    assert len(os.listdir(home / "Maildir" / "new")) == 1


@pytest.mark.parametrize(
    "argv", [["qmail-local"], ["qmail-local", "u", "rel", "l", "", "", "d", "s", "x"]]
)
def test_bin_qmail_local_usage(ctx: ProgramContext, argv: list[str]) -> None:
    import io

    from server.local.program import main

    stdout = io.BytesIO()
    code = main(argv, {}, io.BytesIO(MESSAGE), stdout, ctx)
    assert code == 100
    assert ctx.stderr.getvalue().startswith(b"qmail-local: usage: qmail-local [ -nN ] user")  # type: ignore[attr-defined]
