"""qmail-qstat, qmail-qread, qmail-clean and qmail-start."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from server.programs import ProgramContext
from server.qdir import qfn
from server.send import clean, qread, qstat

from .simkit import Sim


def run_tool(sim: Sim, module: object, stdin: bytes = b"") -> tuple[int, bytes]:
    out = io.BytesIO()
    main = module.main  # type: ignore[attr-defined]
    code = main(["x"], {}, io.BytesIO(stdin), out, sim.ctx)
    return code, out.getvalue()


def test_qstat_counts(sim: Sim) -> None:
    sim.queue("a@x.example", ["b@far.example"])
    sim.queue("a@x.example", ["c@far.example"])
    assert run_tool(sim, qstat) == (
        0,
        b"messages in queue: 2\nmessages in queue but not yet preprocessed: 2\n",
    )
    sim.remote.script = lambda job: b"Zlater\n"
    sim.start().run_due()
    assert run_tool(sim, qstat)[1] == (
        b"messages in queue: 2\nmessages in queue but not yet preprocessed: 0\n"
    )


def test_qread_byte_exact(sim: Sim) -> None:
    sim.local.script = lambda job: b"Kok\n" if job.recipient.startswith("a@") else b"Zbusy\n"
    sim.remote.script = lambda job: b"Dgone\n"
    recips = ["a@mx.example.org", "b@mx.example.org", "c@far.example"]
    msgid = sim.queue("s@x.example", recips)
    sim.start().run_due()
    code, out = run_tool(sim, qread)
    assert code == 0
    assert out == (
        f"14 Nov 2023 22:13:20 GMT  #{msgid}  90  <s@x.example>  bouncing\n".encode()
        + b"  done\tlocal\ta@mx.example.org\n"
        + b"\tlocal\tb@mx.example.org\n"
    )


def test_qread_unprintable_and_missing_mess(sim: Sim) -> None:
    sim.remote.script = lambda job: b"Zlater\n"
    msgid = sim.queue("s\x01@x.example", ["c@far.example"])
    sim.start().run_due()
    out = run_tool(sim, qread)[1]
    assert out.startswith(b"14 Nov 2023 22:13:20 GMT  #")
    assert b"<s_@x.example> \n" in out
    os.unlink(qfn(sim.home / "queue", "mess", msgid))
    assert run_tool(sim, qread)[1] == (
        f"warning: trouble with #{msgid}: file does not exist\n".encode()
    )


@pytest.mark.parametrize(
    ("env", "date"),
    [
        ({"TZ": "JST-9"}, "15 Nov 2023 07:13:20"),
        ({"TZ": "<+0530>-5:30"}, "15 Nov 2023 03:43:20"),
        ({"TZ": "<-03>3"}, "14 Nov 2023 19:13:20"),
    ],
)
def test_qread_with_date_localtime_is_local_time_labelled_gmt(
    sim: Sim, env: dict[str, str], date: str
) -> None:
    """qmail-qread.c drops date822fmt's last 7 bytes (" +0900\\n") and writes " GMT"."""
    import dataclasses

    sim.ctx = dataclasses.replace(sim.ctx, patches=frozenset({"date-localtime"}))
    sim.remote.script = lambda job: b"Zlater\n"
    msgid = sim.queue("s@x.example", ["c@far.example"])
    sim.start().run_due()
    out = io.BytesIO()
    assert qread.main(["qmail-qread"], env, io.BytesIO(), out, sim.ctx) == 0
    assert out.getvalue().startswith(f"{date} GMT  #{msgid}  ".encode())


def test_clean_commands(sim: Sim) -> None:
    q = sim.home / "queue"
    for sub, n in (("mess", 123), ("intd", 123), ("todo", 124), ("intd", 124), ("mess", 12)):
        qfn(q, sub, n).write_bytes(b"")
    code, out = run_tool(sim, clean, b"foop/123\0todo/124\0bad\0xxxx/1\0foop/12a\0foop/999\0")
    assert code == 0
    # "foop/12a": qmail-clean.c answers x for the letter, then cleans message 12
    assert out == b"++xxx++"
    for sub, n in (("mess", 123), ("intd", 123), ("todo", 124), ("intd", 124), ("mess", 12)):
        assert not qfn(q, sub, n).exists()


@pytest.mark.live
def test_qmail_start_forks_the_helpers_and_delivers(tmp_path: Path) -> None:
    """bin/qmail-start as qmail's: qmail-lspawn, qmail-rspawn, qmail-clean and
    the logger are processes; qmail-send talks to them over pipes."""
    from server.home import setup
    from server.queue.client import queue_message
    from server.runtime import real_runtime

    home = tmp_path / "qmail"
    setup(home, me="mx.example.org")
    maildir = home / "alias" / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    logger = [
        sys.executable,
        "-c",
        "import sys; [print('log:', l, end='', flush=True) for l in sys.stdin]",
    ]
    proc = subprocess.Popen(
        [str(home / "bin" / "qmail-start"), "./Maildir/", *logger],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # a watchdog: a hung process must fail the test, not hang the suite
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "log: status: local 0/10 remote 0/20\n"
        ctx = ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())
        result = queue_message(
            ctx, {}, b"Subject: hi\n\nyo\n", "a@x.example", ["postmaster"], invoker=0
        )
        assert result.error == ""
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("log: end msg"):
                break
        assert any(line.startswith("log: delivery 1: success: ") for line in seen), seen
        assert len(list((maildir / "new").iterdir())) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        watchdog.cancel()
    assert proc.returncode == 0, err
    assert out.endswith("log: status: exiting\n")


def test_splogger_records() -> None:
    import syslog

    from server.send.splogger import Splogger

    s = Splogger()
    out = s.feed(b"new msg 1\nwarning: x\nalert: y\n", 1700000000.25)
    assert out == [
        (syslog.LOG_INFO, "1700000000.250000 new msg 1"),
        (syslog.LOG_WARNING, "1700000000.250000 warning: x"),
        (syslog.LOG_ALERT, "1700000000.250000 alert: y"),
    ]
    long = s.feed(b"a" * 800 + b"\x01\n", 5.5)
    assert long == [(syslog.LOG_INFO, "5.500000 " + "a" * 799), (syslog.LOG_INFO, "5.500000+a?")]
    # a partial line waits for its newline
    assert s.feed(b"partial", 6.0) == []
    assert s.feed(b" line\n", 7.0) == [(syslog.LOG_INFO, "7.000000 partial line")]


def test_report_splitter_keeps_delivery_number_zero() -> None:
    from server.send.pipes import ReportSplitter, command
    from server.spawn import DeliveryJob

    s = ReportSplitter()
    assert s.feed(b"\x00Kdid 1+0+0\n\x00\x05Zla") == [(0, b"Kdid 1+0+0\n")]
    assert s.feed(b"ter\n\x00") == [(5, b"Zlater\n")]
    job = DeliveryJob(msgid=47, message=Path("/q/mess/1/47"), sender="a@b", recipient="c@d")
    assert command(3, job) == b"\x031/47\x00a@b\x00c@d\x00"
