"""The two examples of docs/python.md, as written there (keep them in step)."""

from __future__ import annotations

import re
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from harness.api import QmailServer, QmailSim


def send_welcome(host: str, port: int) -> None:
    """The application under test: it sends a welcome mail over SMTP."""
    msg = EmailMessage()
    msg["From"] = "shop@app.example"
    msg["To"] = "alice@example.org"
    msg["Subject"] = "Welcome"
    msg["X-Campaign"] = "spring"
    msg.set_content("Hello Alice!")
    with smtplib.SMTP(host, port) as smtp:
        smtp.send_message(msg)


@pytest.mark.qmail(me="example.org")
def test_the_welcome_mail_arrives(qmail_server: QmailServer) -> None:
    qmail_server.user("alice")
    send_welcome(*qmail_server.smtp_address)
    qmail_server.run()  # let qmail-send deliver
    [message] = qmail_server.maildir("alice")
    assert message["X-Campaign"] == "spring"
    assert message.get_content().strip() == "Hello Alice!"


@pytest.mark.qmail(me="example.org", controls={"queuelifetime": "604800"})
def test_a_servfail_defers_for_a_week_then_bounces(qmail_sim: QmailSim) -> None:
    started = time.monotonic()
    qmail_sim.user("alice")
    qmail_sim.dns_zone("far.example. 300 IN MX 10 mx.far.example.")
    qmail_sim.dns_rule("far.example", type="ANY", rcode="SERVFAIL")
    qmail_sim.inject(
        "From: alice@example.org\nSubject: report\n\nhi\n",
        "-f",
        "alice@example.org",
        "bob@far.example",
    )
    qmail_sim.run()
    deferral = "deferral: CNAME_lookup_failed_temporarily._(#4.4.3)/"
    assert any(line.endswith(deferral) for line in qmail_sim.log())
    assert len(qmail_sim.queue()) == 1

    qmail_sim.advance("8d")  # a week of retries, in virtual time

    assert qmail_sim.queue() == []
    [bounce] = qmail_sim.bounces()
    assert "I'm not going to try again" in bounce.get_content()
    assert time.monotonic() - started < 1.0


def _python_blocks() -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "python.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_examples_here_are_the_ones_in_the_docs() -> None:
    source = Path(__file__).read_text()
    blocks = _python_blocks()
    for block in blocks[:2]:
        start = min(block.index(w) for w in ("\ndef ", "\n@") if w in block)
        assert block[start:].strip() in source


def test_the_script_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    [script] = [b for b in _python_blocks() if b.startswith("from harness.api import QmailSim\n")]
    exec(compile(script, "docs/python.md", "exec"), {})
    assert capsys.readouterr().out == "hi\n"
