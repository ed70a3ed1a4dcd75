"""harness.api.QmailServer and the qmail_server fixture: a real client on loopback."""

from __future__ import annotations

import os
import poplib
import smtplib
from pathlib import Path

import pytest

from harness.api import QmailServer

pytestmark = pytest.mark.live

MESSAGE = "From: app@app.example\r\nSubject: live\r\nX-Order: 42\r\n\r\nthanks\r\n"


def test_smtplib_to_a_maildir(qmail_server: QmailServer) -> None:
    qmail_server.user("alice")
    with smtplib.SMTP(*qmail_server.smtp_address) as client:
        code, banner = client.ehlo("app.example")
        assert code == 250 and banner.startswith(b"example.org")
        client.sendmail("app@app.example", ["alice@example.org"], MESSAGE)
    assert len(qmail_server.queue()) == 1
    qmail_server.run()
    [message] = qmail_server.maildir("alice")
    assert message["X-Order"] == "42"
    assert message["Return-Path"] == "<app@app.example>"
    assert any(line.startswith("new msg") for line in qmail_server.log())
    assert qmail_server.queue() == []


@pytest.mark.qmail(me="mx.example.org", controls={"rcpthosts": "example.org"})
def test_the_marker_and_rcpthosts_reach_the_server(qmail_server: QmailServer) -> None:
    host, port = qmail_server.smtp_address
    assert host == "127.0.0.1"
    with smtplib.SMTP(host, port) as client:
        assert client.ehlo()[1].startswith(b"mx.example.org")
        client.mail("app@app.example")
        code, text = client.rcpt("someone@elsewhere.example")
        assert code == 553 and b"rcpthosts" in text


def test_pop3_and_a_transcript_over_the_socket(qmail_server: QmailServer) -> None:
    qmail_server.user("alice", password="secret")
    lines = qmail_server.smtp("S: 220 example.org ESMTP\nC: QUIT\nS: 221 example.org")
    assert lines == ["220 example.org ESMTP", "221 example.org"]
    qmail_server.inject("Subject: p\n\nbody\n", "alice@example.org")
    qmail_server.run().advance(2)  # qmail-pop3d lists only mail older than now
    client = poplib.POP3(*qmail_server.pop3_address, timeout=10)
    try:
        client.user("alice")
        client.pass_("secret")
        assert client.stat()[0] == 1
    finally:
        client.quit()


def test_a_deferral_to_a_fake_peer_and_the_clock(qmail_server: QmailServer) -> None:
    if os.geteuid() != 0:
        pytest.skip("a fake peer listens on 127.0.2.10:25, which needs root outside a namespace")
    qmail_server.user("alice").dns_zone(
        "far.example. 300 IN MX 10 mx.far.example.\nmx.far.example. 300 IN A 127.0.2.10"
    )
    qmail_server.peer("127.0.2.10", rcpt={"*": "451 busy"})
    qmail_server.inject("Subject: r\n\nb\n", "-f", "alice@example.org", "bob@far.example")
    qmail_server.run()
    assert any("451_busy" in line for line in qmail_server.log())
    assert any(q.matches("far.example ANY") for q in qmail_server.dns_queries())
    assert len(qmail_server.peer_sessions("127.0.2.10")) == 1
    qmail_server.advance("8d")
    assert qmail_server.queue() == []
    assert len(qmail_server.bounces()) == 1


def test_stopped_and_removed_even_when_the_test_fails(tmp_path: Path) -> None:
    server = QmailServer(workroot=tmp_path)
    with pytest.raises(RuntimeError), server:
        address = server.smtp_address
        raise RuntimeError("the test failed")
    assert server.workdir is not None and not server.workdir.exists()
    with pytest.raises(OSError):
        smtplib.SMTP(*address, timeout=5)
