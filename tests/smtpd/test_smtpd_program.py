"""bin/qmail-smtpd in-process: controls, environment, the real queue, qmail-newmrh."""

from __future__ import annotations

import io
import mailbox
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from server import cdb
from server.programs import ProgramContext
from server.runtime import virtual_runtime
from server.smtpd import newmrh, replies
from server.smtpd.core import SmtpCore
from server.smtpd.policy import load_config
from server.smtpd.program import converse, main

SESSION = (
    b"HELO client\r\nMAIL FROM:<a@far.example>\r\nRCPT TO:<bob@mx.example.org>\r\n"
    b"DATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n"
)


def ctx_for(home: Path, patches: frozenset[str] = frozenset()) -> ProgramContext:
    runtime, _ = virtual_runtime()
    return ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO(), patches=patches)


def run(home: Path, data: bytes, env: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    out = io.BytesIO()
    code = main(["qmail-smtpd"], dict(env or {}), io.BytesIO(data), out, ctx_for(home))
    return code, out.getvalue()


def queued(home: Path) -> list[bytes]:
    mess = home / "queue" / "mess"
    return [p.read_bytes() for p in sorted(mess.rglob("*")) if p.is_file()]


def test_a_message_lands_in_the_queue(home: Path) -> None:
    env = {"TCPREMOTEIP": "127.0.0.1", "TCPLOCALHOST": "mx.example.org", "TCPREMOTEHOST": "c"}
    code, out = run(home, SESSION, env)
    assert code == 0
    assert out.split(b"\r\n")[-3].startswith(b"250 ok 1700000000 qp ")
    (msg,) = queued(home)
    lines = msg.split(b"\n")
    assert lines[0].startswith(b"Received: (qmail ") and b"invoked from network" in lines[0]
    assert lines[1] == b"Received: from c (HELO client) (127.0.0.1)"
    assert lines[2] == b"  by mx.example.org with SMTP; 14 Nov 2023 22:13:20 -0000"
    assert lines[3:] == [b"Subject: hi", b"", b"hello", b""]
    parsed = mailbox.Message(msg)
    assert parsed["Subject"] == "hi"


def test_missing_me_and_greeting_is_unable_to_read_controls(home: Path) -> None:
    (home / "control" / "me").unlink()
    code, out = run(home, SESSION)
    assert (code, out) == (1, replies.CONTROL)


def test_databytes_env_overrides_the_file(home: Path) -> None:
    (home / "control" / "databytes").write_text("5\n")
    assert load_config(home, {}).databytes == 5
    assert load_config(home, {"DATABYTES": "0"}).databytes == 0
    assert load_config(home, {"DATABYTES": "x"}).databytes == 0
    assert load_config(home, {"DATABYTES": "4294967295"}).databytes == 4294967294
    _code, out = run(home, SESSION, {"DATABYTES": "3"})
    assert replies.DATABYTES in out
    assert queued(home) == []


def test_environment_defaults_and_empty_values(home: Path) -> None:
    config = load_config(home, {})
    assert (config.remoteip, config.local, config.remotehost) == (b"unknown",) * 3
    assert config.remoteinfo is None and config.relayclient is None
    config = load_config(home, {"TCPREMOTEIP": "", "TCPLOCALIP": "1.2.3.4", "RELAYCLIENT": ""})
    assert (config.remoteip, config.local, config.relayclient) == (b"", b"1.2.3.4", b"")


def test_controls(home: Path) -> None:
    control = home / "control"
    (control / "smtpgreeting").write_text("greet.example here \t\n")
    (control / "timeoutsmtpd").write_text("0\n")
    (control / "badmailfrom").write_text("# c\n\n@Spam.Example\n")
    config = load_config(home, {})
    assert config.greeting == b"greet.example here"
    assert config.timeout == 1
    assert config.badmailfrom == frozenset({b"@spam.example"})
    (control / "rcpthosts").unlink()
    assert load_config(home, {}).rcpthosts.allowed(b"x@anywhere.example")
    (control / "rcpthosts").write_text("")
    assert not load_config(home, {}).rcpthosts.allowed(b"x@mx.example.org")


def test_newmrh_and_morercpthosts(home: Path) -> None:
    control = home / "control"
    text = "# more\nMore.Example  \n\n.Sub.More.Example\t\nlast.example"
    (control / "morercpthosts").write_text(text)
    assert newmrh.main(["qmail-newmrh"], {}, io.BytesIO(), io.BytesIO(), ctx_for(home)) == 0
    reader = cdb.Reader.open(control / "morercpthosts.cdb")
    keys = [k for k, _ in reader.items()]
    assert keys == [b"more.example", b".sub.more.example", b"last.example"]
    assert not (control / "morercpthosts.tmp").exists()
    assert oct((control / "morercpthosts.cdb").stat().st_mode & 0o777) == "0o644"
    hosts = load_config(home, {}).rcpthosts
    assert hosts.allowed(b"a@MORE.example")
    assert hosts.allowed(b"a@x.sub.more.example")
    assert not hosts.allowed(b"a@sub.more.example")
    assert hosts.allowed(b"a@last.example")


def test_newmrh_without_the_file(home: Path) -> None:
    ctx = ctx_for(home)
    assert newmrh.main(["qmail-newmrh"], {}, io.BytesIO(), io.BytesIO(), ctx) == 111
    assert isinstance(ctx.stderr, io.BytesIO)
    assert ctx.stderr.getvalue() == (
        b"qmail-newmrh: fatal: unable to read control/morercpthosts: file does not exist\n"
    )


def test_converse_times_out(home: Path) -> None:
    config = load_config(home, {})
    core = SmtpCore(config, now=lambda: 0, date=lambda t: b"d")
    written: list[bytes] = []
    code = converse(core, lambda timeout: None, written.append, lambda req: ("", 1))
    assert code == 1
    assert b"".join(written) == b"220 mx.example.org ESMTP\r\n" + replies.TIMEOUT


def test_relay_reject_patch_switch(home: Path) -> None:
    out = io.BytesIO()
    data = b"MAIL FROM:<>\r\nRCPT TO:<a%b@mx.example.org>\r\nQUIT\r\n"
    ctx = ctx_for(home, frozenset({"smtpd-relay-reject"}))
    main(["qmail-smtpd"], {}, io.BytesIO(data), out, ctx)
    assert replies.RELAY_REJECT in out.getvalue()
    assert replies.RELAY_REJECT not in run(home, data)[1]


@pytest.mark.parametrize(
    ("status", "reply"),
    [
        (53, b"451 qq write error or disk full (#4.3.0)\r\n"),
        (31, b"554 mail server permanently rejected message (#5.3.0)\r\n"),
        (11, b"554 envelope address too long for qq (#5.1.3)\r\n"),
        (99, b"451 qq temporary problem (#4.3.0)\r\n"),
        (None, b"451 unable to exec qq (#4.3.0)\r\n"),
    ],
)
def test_qmailqueue_failures(home: Path, tmp_path: Path, status: int | None, reply: bytes) -> None:
    fake = tmp_path / "fakeqq"
    if status is not None:
        fake.write_text(f"#!/bin/sh\ncat >/dev/null\nexit {status}\n")
        os.chmod(fake, 0o755)
    _code, out = run(home, SESSION, {"QMAILQUEUE": str(fake)})
    assert out.split(b"\r\n")[-3:] == [reply[:-2], b"221 mx.example.org", b""]
    assert queued(home) == []


def test_date_localtime_patch_reaches_the_received_line(home: Path) -> None:
    out = io.BytesIO()
    ctx = ctx_for(home, frozenset({"date-localtime"}))
    env = {"TZ": "Europe/Berlin", "TCPREMOTEIP": "127.0.0.1"}
    assert main(["qmail-smtpd"], env, io.BytesIO(SESSION), out, ctx) == 0
    (msg,) = queued(home)
    assert b"  by unknown with SMTP; 14 Nov 2023 23:13:20 +0100\n" in msg


def test_simulated_runtime_names_its_own_addresses(home: Path) -> None:
    ctx = ctx_for(home)
    ctx.runtime.ipme = frozenset({(0, 0, 0, 0), (192, 0, 2, 7)})
    (home / "control" / "localiphost").write_text("mx.example.org\n")
    data = b"MAIL FROM:<>\r\nRCPT TO:<a@[192.0.2.7]>\r\nRCPT TO:<a@[127.0.0.1]>\r\nQUIT\r\n"
    out = io.BytesIO()
    main(["qmail-smtpd"], {}, io.BytesIO(data), out, ctx)
    assert out.getvalue().split(b"\r\n")[2:4] == [b"250 ok", replies.NOGATEWAY[:-2]]


def test_environment_bytes_come_back_unchanged(home: Path) -> None:
    env = {"TCPREMOTEHOST": b"h\xe9\xff".decode("utf-8", "surrogateescape"), "RELAYCLIENT": "é"}
    config = load_config(home, env)
    assert config.remotehost == b"h\xe9\xff"
    assert config.relayclient == "é".encode()
