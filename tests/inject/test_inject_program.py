"""qmail-inject and sendmail as programs: output byte for byte, errors, queueing.

The expected texts were produced by netqmail-1.06's own qmail-inject -n with
the same control files and environment (Date: and Message-ID: aside, which
here come from the virtual clock and pid).
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from server.programs import ProgramContext, run
from server.queue.core import message_ids, read_envelope
from server.runtime import virtual_runtime

PARSE_ERROR = b"qmail-inject: fatal: unable to parse this line:\n"
USAGE = b"sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]\n"
DATE = b"Date: 14 Nov 2023 22:13:20 -0000\n"
MSGID = b"Message-ID: <20231114221320.4321.qmail@mx.example.org>\n"


def inject(
    home: Path,
    argv: list[str],
    env: dict[str, str],
    message: bytes,
    *,
    program: str = "qmail-inject",
    patches: frozenset[str] = frozenset(),
) -> tuple[int, bytes, bytes]:
    runtime, _ = virtual_runtime(first_pid=4321, uid=1234)
    err = io.BytesIO()
    out = io.BytesIO()
    ctx = ProgramContext(home=home, runtime=runtime, stderr=err, patches=patches)
    code = run(program, [program, *argv], env, io.BytesIO(message), out, ctx)
    return code, out.getvalue(), err.getvalue()


def test_header_fix_up(home: Path) -> None:
    message = (
        b"From: Joe <joe>\n"
        b'To: bob, "Mr X" <x@y+>, group: a@b, c; , (comment) d@e.f\n'
        b"Bcc: hidden\nSubject: hi\nReturn-Path: <ret@host>\nContent-Length: 5\n\nbody\n.line"
    )
    code, out, err = inject(home, ["-n"], {"USER": "alice", "NAME": "Alice A"}, message)
    assert (code, err) == (0, b"")
    assert out == (
        b"Return-Path: <ret@host.example.org>\n"
        + DATE
        + MSGID
        + b"From: Joe <joe@mx.example.org>\n"
        b'To: bob@mx.example.org, "Mr X" <x@y.example.org>, group: a@b.example.org,\n'
        b"  c@mx.example.org;, d@e.f (comment)\n"
        b"Subject: hi\n\nbody\n.line\n"
    )


def test_resent_and_comment_style(home: Path) -> None:
    env = {"USER": "u", "QMAILNAME": "Full_Name", "QMAILINJECT": "c"}
    code, out, _ = inject(home, ["-n"], env, b"Resent-To: r@x.y\nTo: t@x.y\n\n")
    assert code == 0
    assert out == (
        b"Return-Path: <u@mx.example.org>\n"
        b"Resent-" + DATE + b"Resent-" + MSGID + b"Resent-From: u@mx.example.org (Full_Name)\n"
        b"Resent-To: r@x.y\nTo: t@x.y\n\n"
    )


def test_verp_flags_and_quoted_user(home: Path) -> None:
    env = {"QMAILUSER": "a.b.", "QMAILNAME": "Na", "QMAILHOST": "host+", "QMAILINJECT": "rm"}
    code, out, _ = inject(home, ["-n"], env, b"To: t@x.y\n\n")
    assert code == 0
    assert out.split(b"\n")[0] == (b'Return-Path: <"a.b.-1700000000.4321-@host.example.org-"@[]>')
    assert b'From: "Na" <"a.b."@host.example.org>\n' in out


def test_no_recipient_fields_and_mbox_line(home: Path) -> None:
    code, out, _ = inject(home, ["-n"], {"USER": "u"}, b"From somebody Tue\nX:y\n\n")
    assert code == 0
    assert out.endswith(
        b"From: u@mx.example.org\nCc: recipient list not shown: ;\n"
        b"MBOX-Line: From somebody Tue\nX:y\n\n"
    )


def test_empty_user_is_kept(home: Path) -> None:
    _, out, _ = inject(home, ["-n"], {"USER": ""}, b"")
    assert out.startswith(b'Return-Path: <""@mx.example.org>\n')


def test_environment_overrides_controls(home: Path) -> None:
    env = {"USER": "u", "QMAILDEFAULTHOST": "dh", "QMAILDEFAULTDOMAIN": "dd.example"}
    env["QMAILIDHOST"] = "id.example"
    _, out, _ = inject(home, ["-n"], env, b"To: x\n\n")
    assert b"Message-ID: <20231114221320.4321.qmail@id.example>\n" in out
    assert b"To: x@dh.dd.example\n" in out


def test_date_localtime_patch(home: Path) -> None:
    env = {"USER": "u", "TZ": "Europe/Berlin"}
    _, out, _ = inject(home, ["-n"], env, b"", patches=frozenset({"date-localtime"}))
    assert b"Date: 14 Nov 2023 23:13:20 +0100\n" in out
    assert MSGID in out  # the Message-ID stays in GMT


@pytest.mark.parametrize(
    ("argv", "message", "code", "err"),
    [
        (
            ["-n"],
            b"To: (unclosed\n\n",
            100,
            b"qmail-inject: fatal: unable to parse this line:\nTo: (unclosed\n",
        ),
        (["-n", "-Q"], b"", 100, b"qmail-inject: illegal option -- Q\n"),
        (["-n", "-f"], b"", 100, b"qmail-inject: option requires an argument -- f\n"),
        (["-n", "-f", "(x"], b"", 0, b""),
        (["-n", "x)"], b"", 0, b""),
    ],
)
def test_errors(home: Path, argv: list[str], message: bytes, code: int, err: bytes) -> None:
    assert inject(home, argv, {"USER": "u"}, message)[::2] == (code, err)


def test_mail_followup_to(home: Path, tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.write_text("# lists\nList@Example.ORG\n")
    env = {"USER": "u", "QMAILMFTFILE": str(lists)}
    _, out, _ = inject(home, ["-n"], env, b"To: list@example.org, me@x.y\n\n")
    assert b"Mail-Followup-To: list@example.org,\n  me@x.y\nTo: " in out


def test_queues_with_header_and_argument_recipients(home: Path) -> None:
    message = b"To: t@x.y\nBcc: b@x.y\nSubject: s\n\nhello\n"
    code, out, err = inject(home, ["-H", "-f", "s@x.y", "a@x.y"], {"USER": "u"}, message)
    assert (code, out, err) == (0, b"", b"")
    [msgid] = message_ids(home / "queue")
    split = str(msgid % 23)
    sender, recipients = read_envelope(home / "queue" / "todo" / str(msgid))
    assert sender == "s@x.y"
    assert recipients == ["a@x.y", "t@x.y", "b@x.y"]
    queued = (home / "queue" / "mess" / split / str(msgid)).read_bytes()
    assert queued.startswith(b"Received: (qmail 4322 invoked by uid 1234); 14 Nov 2023 ")
    assert b"Bcc" not in queued and queued.endswith(b"To: t@x.y\nSubject: s\n\nhello\n")


def test_queue_failure_is_reported(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "qq"
    script.write_text("#!/bin/sh\ncat >/dev/null\nexit 31\n")
    script.chmod(0o755)
    env = {"USER": "u", "QMAILQUEUE": str(script)}
    code, _, err = inject(home, ["x@y.z"], env, b"")
    assert code == 100
    assert err == b"qmail-inject: fatal: mail server permanently rejected message (#5.3.0)\n"


class OneByte(io.RawIOBase):
    """A stdin that gives one byte per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self.data:
            return 0
        buffer[0] = self.data[0]
        self.data = self.data[1:]
        return 1


def test_stdin_a_byte_at_a_time(home: Path) -> None:
    message = b"To: a, b\nSubject: x\n\nbody\n"
    whole = inject(home, ["-n"], {"USER": "u"}, message)
    runtime, _ = virtual_runtime(first_pid=4321, uid=1234)
    out = io.BytesIO()
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
    with io.BufferedReader(OneByte(message), buffer_size=1) as slow:
        run("qmail-inject", ["qmail-inject", "-n"], {"USER": "u"}, slow, out, ctx)
    assert out.getvalue() == whole[1]


# -- sendmail -------------------------------------------------------------------


def test_sendmail_t_and_f(home: Path) -> None:
    message = b"Subject: s\nTo: t@x\nCc: c\n\nhi\n"
    env = {"USER": "u", "NAME": "Nm"}
    argv = ["-t", "-F", "Full", "-f", "bounce@b.example", "-i", "-oi", "--", "arg1"]
    code, _, err = inject(home, argv, env, message, program="sendmail")
    assert (code, err) == (0, b"")
    [msgid] = message_ids(home / "queue")
    sender, recipients = read_envelope(home / "queue" / "todo" / str(msgid))
    assert sender == "bounce@b.example"
    # -t is qmail-inject -H: arguments first, then the header's recipients
    assert recipients == ["arg1@mx.example.org", "t@x.example.org", "c@mx.example.org"]
    queued = (home / "queue" / "mess" / str(msgid % 23) / str(msgid)).read_bytes()
    assert b"\nFrom: bounce@b.example\nSubject: s\n" in queued  # -F dropped by -f


def test_sendmail_usage(home: Path) -> None:
    assert inject(home, ["-q"], {}, b"", program="sendmail")[::2] == (
        100,
        b"sendmail: illegal option -- q\n" + USAGE,
    )
    assert inject(home, ["-bx"], {}, b"", program="sendmail")[::2] == (100, USAGE)


def test_sendmail_bs_runs_smtpd_as_a_local_client(home: Path) -> None:
    session = b"HELO me\r\nMAIL FROM:<a@x.y>\r\nRCPT TO:<far@elsewhere.example>\r\nQUIT\r\n"
    _, out, _ = inject(home, ["-bs"], {}, session, program="sendmail")
    if not out:
        pytest.skip("qmail-smtpd is not built yet")
    lines = out.split(b"\r\n")
    assert lines[0] == b"220 mx.example.org ESMTP"
    # RELAYCLIENT="" from sendmail -bs lets any recipient through
    assert lines[3] == b"250 ok"


@pytest.mark.live
def test_bin_sendmail_as_a_process(home: Path) -> None:
    import subprocess

    done = subprocess.run(
        [str(home / "bin" / "sendmail"), "-f", "p@x.y", "r@x.y"],
        input=b"Subject: proc\n\nbody\n",
        capture_output=True,
        env={"PATH": os.environ.get("PATH", ""), "USER": "u"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [msgid] = message_ids(home / "queue")
    assert read_envelope(home / "queue" / "todo" / str(msgid)) == ("p@x.y", ["r@x.y"])
    queued = (home / "queue" / "mess" / str(msgid % 23) / str(msgid)).read_bytes()
    assert f"invoked by uid {os.getuid()})".encode() in queued
    assert sys.executable  # the bin/ scripts run under this interpreter


# -- predate, datemail, mailsubj -------------------------------------------------


def test_predate_puts_a_local_date_first(home: Path) -> None:
    env = {"TZ": "America/St_Johns", "USER": "u"}
    code, out, _ = inject(home, ["qmail-inject", "-n"], env, b"To: x\n\n", program="predate")
    assert code == 0
    assert b"\nDate: 14 Nov 2023 18:43:20 -0330\n" in out
    assert b"-0000" not in out  # qmail-inject kept predate's Date:
    assert inject(home, [], {}, b"", program="predate")[::2] == (
        100,
        b"predate: usage: predate child\n",
    )


def test_predate_names_a_child_it_cannot_run_with_error_str(home: Path) -> None:
    """predate.c: strerr_die4sys(111,FATAL,"unable to run ",argv[1],": ")."""
    runtime, _ = virtual_runtime(first_pid=4321, uid=1234)
    missing = str(home / "no-such-program")
    with io.BytesIO() as err, io.BytesIO() as out, io.BytesIO(b"") as stdin:
        ctx = ProgramContext(home=home, runtime=runtime, stderr=err, inprocess=False)
        assert run("predate", ["predate", missing], {}, stdin, out, ctx) == 111
        assert (
            err.getvalue()
            == f"predate: fatal: unable to run {missing}: file does not exist\n".encode()
        )


def test_datemail_and_mailsubj_queue(home: Path) -> None:
    code, _, err = inject(
        home, ["r@x.y"], {"TZ": "Europe/Berlin"}, b"Subject: d\n\nb\n", program="datemail"
    )
    assert (code, err) == (0, b"")
    code, _, err = inject(
        home, ["hello there", "m@x.y", "n@x.y"], {}, b"text\n", program="mailsubj"
    )
    assert (code, err) == (0, b"")
    found = {}
    for msgid in message_ids(home / "queue"):
        _, recipients = read_envelope(home / "queue" / "todo" / str(msgid))
        found[tuple(recipients)] = home / "queue" / "mess" / str(msgid % 23) / str(msgid)
    # a field's addresses are collected right to left, as netqmail does
    assert set(found) == {("r@x.y",), ("n@x.y", "m@x.y")}
    assert b"\nDate: 14 Nov 2023 23:13:20 +0100\n" in found[("r@x.y",)].read_bytes()
    assert b"\nSubject: hello there\nTo: m@x.y, n@x.y\n\ntext\n" in (
        found[("n@x.y", "m@x.y")].read_bytes()
    )
