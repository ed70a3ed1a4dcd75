"""harness.recorder: transcript lines, volatile replies, chunking, the written file."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.recorder import Recorder, World, scenario_text
from harness.scenario import load_text
from harness.scenario.model import SessionStep
from harness.scenario.values import parse_transcript

SMTP_CLIENT = (
    b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n"
    b"bare\nQUIT\r\n"
)
SMTP_SERVER = (
    b"220 mx.example.org ESMTP\r\n250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    b"250 ok\r\n250 ok\r\n354 go ahead\r\n250 ok 1700000000 qp 1234\r\n"
    b"502 unimplemented (#5.5.1)\r\n221 mx.example.org\r\n"
)
POP3_SERVER = (
    b"+OK <1000.1700000000@mx.example.org>\r\n+OK \r\n+OK \r\n+OK 1 321\r\n+OK \r\n1 321\r\n.\r\n"
    b"+OK \r\n1 1700000000.1000.mx\r\n.\r\n+OK \r\n"
    b"Received: (qmail 1000 invoked by uid 0); 14 Nov 2023 22:13:20 -0000\r\n"
    b"Subject: 42\r\n\r\n2023 body\r\n.\r\n+OK \r\n"
)
POP3_CLIENT = b"USER alice\r\nPASS w\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nQUIT\r\n"


def record(protocol: str, client: bytes, server: bytes, step: int = 0) -> list[str]:
    """Feed the session the way a pipelining client would: all its lines, then all replies."""
    rec = Recorder(protocol)  # type: ignore[arg-type]
    size = step or max(len(client), len(server), 1)
    for data, feed in ((client, rec.client), (server, rec.server)):
        for i in range(0, len(data), size):
            feed(data[i : i + size])
    rec.close()
    return rec.entries


def test_smtp_lines() -> None:
    entries = record("smtp", SMTP_CLIENT, SMTP_SERVER)
    assert "R: bare\\n" in entries
    assert "C:" in entries  # the empty line of the message
    assert r"S: ~ ^250 ok \d+ qp \d+$" in entries
    assert "S: 250-PIPELINING" in entries


def test_pop3_volatile_parts() -> None:
    entries = [e for e in record("pop3", POP3_CLIENT, POP3_SERVER) if e.startswith("S:")]
    assert entries[0] == r"S: ~ ^\+OK <\d+\.\d+@mx\.example\.org>$"
    assert "S: +OK " in entries  # qmail-popup's trailing space is kept
    assert r"S: ~ ^\+OK 1 \d+$" in entries  # STAT
    assert r"S: ~ ^1 \d+$" in entries  # LIST
    assert r"S: ~ ^1 \S+$" in entries  # UIDL
    assert any(e.startswith(r"S: ~ ^Received: \(qmail \d+ invoked") for e in entries)
    assert "S: Subject: 42" in entries and "S: 2023 body" in entries  # not headers that vary


@given(st.integers(1, 40))
def test_chunk_size_does_not_matter(step: int) -> None:
    for proto, client, server in (
        ("smtp", SMTP_CLIENT, SMTP_SERVER),
        ("pop3", POP3_CLIENT, POP3_SERVER),
    ):
        assert record(proto, client, server, step) == record(proto, client, server)


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_any_bytes_make_a_transcript_that_parses_and_matches(client: bytes, server: bytes) -> None:
    rec = Recorder("smtp")
    rec.client(client)
    rec.server(server)
    rec.close()
    text = scenario_text(
        name="b", protocol="smtp", transcript=rec.transcript(), env={}, world=World()
    )
    (scenario,) = load_text(text, "/tmp/b.yaml")  # through YAML and the loader, too
    step = scenario.steps[0]
    assert isinstance(step, SessionStep)
    lines = step.transcript
    assert lines == parse_transcript(rec.transcript())
    assert b"".join(line.data for line in lines if line.who != "S") == client
    got = server.split(b"\r\n")
    actual = [p.decode("latin-1") for p in got[:-1]]
    if got[-1]:
        actual.append(got[-1].decode("latin-1") + " <no CRLF>")
    expected = [line.expect for line in lines if line.expect is not None]
    assert len(expected) == len(actual)
    for want, have in zip(expected, actual, strict=True):
        assert want.search(have) if want.regex else want.text == have


def test_pipelined_smtp_waits_for_replies_in_order() -> None:
    rec = Recorder("smtp")
    assert rec.replies.waiting  # the greeting
    rec.server(b"220 hi\r\n")
    assert not rec.replies.waiting
    rec.client(b"DATA\r\n")
    rec.server(b"354 go ahead\r\n")
    rec.client(b"line\r\n")
    assert not rec.replies.waiting  # message lines get no reply
    rec.client(b".\r\n")
    assert rec.replies.waiting


def test_written_file_loads() -> None:
    rec = Recorder("pop3")
    rec.server(b"+OK <1.2@h>\r\n")
    rec.client(b"USER a\r\n")
    rec.server(b"+OK \r\n")
    world = World(control={"me": "h"}, users={"a": {"password": "p"}}, notes=["a note"])
    text = scenario_text(
        name="x", protocol="pop3", transcript=rec.transcript(), env={"A": "1"}, world=world
    )
    assert text.startswith("# a note\n")
    (scenario,) = load_text(text, "/tmp/x.yaml")
    (step,) = scenario.steps
    assert isinstance(step, SessionStep) and step.kind == "pop3"
    assert [t.who for t in step.transcript] == ["S", "C", "S"]
    assert str(step.transcript[2].expect) == "+OK "
