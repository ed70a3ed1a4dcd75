"""qmail-queue the program: in-process main(), bad envelopes, and as a real process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.programs import ProgramContext
from server.queue import codes
from server.queue.client import queue_message
from server.queue.core import DEATH
from server.queue.invoker import Invoker, invoker_from_env
from server.queue.program import main, system_qmail_uids
from server.runtime import VirtualClock
from tests.queue.queue_helpers import make_ctx, queue_files

MESSAGE = b"Subject: program\n\nbody\n"
ENVELOPE = b"Fa@b\0Tc@d\0\0"


def run_main(ctx: ProgramContext, envelope: bytes, env: dict[str, str] | None = None) -> int:
    return main(["qmail-queue"], env or {}, io.BytesIO(MESSAGE), io.BytesIO(envelope), ctx)


def only_message(queue: Path) -> bytes:
    [mess] = queue_files(queue)["mess"]
    data: bytes = mess.read_bytes()
    return data


def test_in_process_main_queues(home: Path) -> None:
    assert run_main(make_ctx(home), ENVELOPE) == 0
    queue = home / "queue"
    assert only_message(queue).startswith(b"Received: (qmail 1000 invoked by uid 1000); ")
    [todo] = queue_files(queue)["todo"]
    assert todo.read_bytes() == b"u1000\0p1000\0Fa@b\0Tc@d\0"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("network", "from network"),
        ("bounce", "for bounce"),
        ("alias", "by alias"),
        ("77", "by uid 77"),
    ],
)
def test_invoker_variable(home: Path, value: str, words: str) -> None:
    assert run_main(make_ctx(home), ENVELOPE, {"QMAILSIM_INVOKER": value}) == 0
    expected = f"Received: (qmail 1000 invoked {words}); ".encode()
    assert only_message(home / "queue").startswith(expected)


def test_unknown_invoker_value_is_ignored(home: Path) -> None:
    assert run_main(make_ctx(home), ENVELOPE, {"QMAILSIM_INVOKER": "root"}) == 0
    assert b"invoked by uid 1000" in only_message(home / "queue")


@pytest.mark.parametrize(
    ("envelope", "code"),
    [
        (b"Ta@b\0\0", codes.ENVELOPE_FORMAT),  # missing F
        (b"Fa@b\0Xc@d\0\0", codes.ENVELOPE_FORMAT),  # bad T
        (b"Fa@b\0T" + b"c" * 1003 + b"\0\0", codes.ADDRESS_TOO_LONG),
    ],
)
def test_bad_envelope_leaves_mess_and_intd(home: Path, envelope: bytes, code: int) -> None:
    # qmail-queue.c die(91)/die(11) do not clean up: qmail-send removes the
    # files after 36 hours (states S3).
    assert run_main(make_ctx(home), envelope) == code
    files = queue_files(home / "queue")
    assert set(files) == {"mess", "intd"}
    assert files["mess"][0].read_bytes().endswith(MESSAGE)


def test_bad_envelope_leaves_what_the_buffer_flushed(home: Path) -> None:
    sender = b"s" * 300
    assert run_main(make_ctx(home), b"F" + sender + b"\0X\0") == codes.ENVELOPE_FORMAT
    [intd] = queue_files(home / "queue")["intd"]
    written = b"u1000\0p1000\0F" + sender + b"\0"  # 314 bytes put, 256 flushed
    assert intd.read_bytes() == written[:256]


@pytest.mark.parametrize("envelope", [b"", b"F", b"Fa@b\0", b"Fa@b\0Tc@d\0"])
def test_envelope_cut_short_is_a_read_error_and_cleans_up(home: Path, envelope: bytes) -> None:
    assert run_main(make_ctx(home), envelope) == codes.READ_ERROR
    assert queue_files(home / "queue") == {}


def test_missing_home(tmp_path: Path) -> None:
    assert run_main(make_ctx(tmp_path / "none"), ENVELOPE) == codes.HOME_TROUBLE


class SlowEnvelope(io.RawIOBase):
    """fd 1 whose writer takes a day: each read moves the clock past DEATH."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self.clock.advance(DEATH)
        buffer[:1] = b"F"
        return 1


def test_timeout_after_a_day(home: Path) -> None:
    ctx = make_ctx(home)
    clock = VirtualClock()
    ctx.runtime.clock = clock
    with SlowEnvelope(clock) as slow:
        code = main(["qmail-queue"], {}, io.BytesIO(MESSAGE), slow, ctx)  # type: ignore[arg-type]
    assert code == codes.TIMEOUT


# --- as real processes -------------------------------------------------------


@pytest.mark.live
def test_bin_qmail_queue_through_the_client(home: Path) -> None:
    ctx = make_ctx(home, inprocess=False)
    result = queue_message(ctx, {}, MESSAGE, "a@b", ["c@d", "e@f"], invoker="network")
    assert result.error == ""
    assert result.msgid is None
    assert result.qp > 0
    mess = only_message(home / "queue")
    assert mess.startswith(f"Received: (qmail {result.qp} invoked from network); ".encode())
    assert mess.endswith(b" -0000\n" + MESSAGE)
    [todo] = queue_files(home / "queue")["todo"]
    # The u record holds the uid qmail-queue runs as on that path: qmaild's
    # for mail from the network, where this system has qmail's users.
    uid = {v: k for k, v in system_qmail_uids().items()}.get("network", os.getuid())
    assert todo.read_bytes() == b"u%d\0p%d\0Fa@b\0Tc@d\0Te@f\0" % (uid, result.qp)


def _run_qmail_queue_process(home: Path, envelope: bytes) -> tuple[int, int]:
    read_end, write_end = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != "QMAILSIM_INVOKER"}
    with subprocess.Popen(
        [sys.executable, "-m", "server", "--home", str(home), "qmail-queue"],
        stdin=subprocess.PIPE,
        stdout=read_end,
        env=env,
    ) as proc:
        os.close(read_end)
        assert proc.stdin is not None
        proc.stdin.write(MESSAGE)
        proc.stdin.close()
        with open(write_end, "wb") as fde:
            fde.write(envelope)
        return proc.wait(), proc.pid


@pytest.mark.live
def test_process_without_invoker_is_by_uid(home: Path) -> None:
    code, pid = _run_qmail_queue_process(home, ENVELOPE)
    assert code == 0
    expected = f"Received: (qmail {pid} invoked by uid {os.getuid()}); "
    assert only_message(home / "queue").startswith(expected.encode())
    [mess] = queue_files(home / "queue")["mess"]
    assert oct(mess.stat().st_mode & 0o777) == oct(0o644)


@pytest.mark.live
def test_process_bad_envelope_exit_code(home: Path) -> None:
    code, _ = _run_qmail_queue_process(home, b"Fa@b\0Zc\0\0")
    assert code == codes.ENVELOPE_FORMAT


# --- QMAILQUEUE ----------------------------------------------------------------


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_qmailqueue_permanent_exit(home: Path, tmp_path: Path) -> None:
    script = _script(tmp_path / "qq31", "exit 31\n")
    result = queue_message(
        make_ctx(home), {"QMAILQUEUE": str(script)}, MESSAGE, "a@b", ["c@d"], invoker="network"
    )
    assert result.error == "Dmail server permanently rejected message (#5.3.0)"
    assert result.qp > 0
    assert queue_files(home / "queue") == {}


def test_qmailqueue_relative_to_home_gets_message_envelope_and_invoker(home: Path) -> None:
    out = home / "seen"
    _script(
        home / "bin" / "myqq",
        f"cat > {out}.msg\ncat <&1 > {out}.env\npwd > {out}.cwd\n"
        f'echo "$QMAILSIM_INVOKER" > {out}.inv\n',
    )
    result = queue_message(
        make_ctx(home), {"QMAILQUEUE": "bin/myqq"}, MESSAGE, "a@b", ["c@d"], invoker="bounce"
    )
    assert result.error == ""
    assert Path(f"{out}.msg").read_bytes() == MESSAGE  # no Received line: that is qmail-queue's
    assert Path(f"{out}.env").read_bytes() == ENVELOPE
    assert Path(f"{out}.cwd").read_text().strip() == str(home)
    assert Path(f"{out}.inv").read_text().strip() == "bounce"


def test_qmailqueue_killed_by_a_signal(home: Path, tmp_path: Path) -> None:
    script = _script(tmp_path / "qqkill", "kill -9 $$\n")
    result = queue_message(make_ctx(home), {"QMAILQUEUE": str(script)}, b"", "", [], invoker=1)
    assert result.error == "Zqq crashed (#4.3.0)"


def test_qmailqueue_that_reads_nothing_but_exits_0(home: Path, tmp_path: Path) -> None:
    # qmail.c: the client's write failed (flagerr), so exit 0 is "read error".
    script = _script(tmp_path / "qq0", "exec 0<&- 1<&-\nexit 0\n")
    big = b"x" * (1 << 20)
    result = queue_message(make_ctx(home), {"QMAILQUEUE": str(script)}, big, "", [], invoker=1)
    assert result.error == "Zqq read error (#4.3.0)"


@pytest.mark.parametrize("value", ["", "bin/no-such-program"])
def test_qmailqueue_cannot_exec(home: Path, value: str) -> None:
    result = queue_message(make_ctx(home), {"QMAILQUEUE": value}, b"", "", [], invoker=1)
    assert result.error == "Zunable to exec qq (#4.3.0)"


def test_qmailqueue_overrides_inprocess(home: Path, tmp_path: Path) -> None:
    script = _script(tmp_path / "qq71", "exit 71\n")
    ctx = make_ctx(home, inprocess=True)
    result = queue_message(ctx, {"QMAILQUEUE": str(script)}, b"", "", [], invoker=1)
    assert result.error == "Zmail server temporarily rejected message (#4.3.0)"
    assert result.msgid is None


class Dribble(io.RawIOBase):
    """fd 1 that hands out one byte per read and must not be read past the envelope."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        assert self.data, "qmail-queue read past the envelope's final NUL"
        buffer[:1], self.data = self.data[:1], self.data[1:]
        return 1


def test_envelope_read_byte_at_a_time_stops_at_the_final_nul(home: Path) -> None:
    # The writer may keep fd 1 open after the envelope: reading on would hang.
    with Dribble(ENVELOPE) as fd1:
        code = main(["qmail-queue"], {}, io.BytesIO(MESSAGE), fd1, make_ctx(home))  # type: ignore[arg-type]
    assert code == 0
    [todo] = queue_files(home / "queue")["todo"]
    assert todo.read_bytes().endswith(b"Fa@b\0Tc@d\0")


def test_real_uid_of_qmail_users() -> None:
    # qmail-queue.c compares getuid() with auto_uida, auto_uidd, auto_uids.
    uids: dict[int, Invoker] = {64010: "alias", 64011: "network", 64012: "bounce"}
    assert invoker_from_env({}, 64011, uids) == "network"
    assert invoker_from_env({}, 64010, uids) == "alias"
    assert invoker_from_env({}, 64012, uids) == "bounce"
    assert invoker_from_env({}, 500, uids) == 500
    assert invoker_from_env({"QMAILSIM_INVOKER": "bounce"}, 64011, uids) == "bounce"
    assert invoker_from_env({}, 64011) == 64011
