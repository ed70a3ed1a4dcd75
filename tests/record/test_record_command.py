"""qmail-sim record end to end: against a home's bin/qmail-smtpd, and through
``qmail-sim serve`` on loopback (driver and proxy), then replayed on the simulator."""

from __future__ import annotations

import argparse
import functools
import io
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.commands.record import add_arguments, replay, run
from server.home import setup
from tests.subprocs import stop

SESSION = (
    b"EHLO client.example\nMAIL FROM:<a@b.example>\nRCPT TO:<x@mx.example.org>\n"
    b"RCPT TO:<y@elsewhere.example>\nDATA\nSubject: hi\n\nhello\n.\nNOOP\nQUIT\n"
)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    setup(path, me="mx.example.org")
    (path / "control" / "databytes").write_text("100000\n")
    return path


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


@pytest.mark.live
def test_record_home_program_then_replay(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rec.yaml"
    _stdin(monkeypatch, SESSION)
    assert run(_args("--home", str(home), "-o", str(out), "--env", "RELAYCLIENT=")) == 0
    text = out.read_text()
    assert "S: 220 mx.example.org ESMTP\n" in text
    assert "S: ~ ^250 ok \\d+ qp \\d+$" in text
    assert "S: 553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)" not in text
    assert "databytes: '100000'" in text and "RELAYCLIENT: ''" in text and "exit: 0" in text
    assert replay(out) == 0


@pytest.fixture
def served(home: Path) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "serve", str(home), "--smtp", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("listening smtp 127.0.0.1:"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        stop(proc)


@pytest.mark.live
def test_record_served_smtp(
    home: Path, served: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rec.yaml"
    _stdin(monkeypatch, SESSION)
    assert run(_args("--smtp", f"127.0.0.1:{served}", "--home", str(home), "-o", str(out))) == 0
    text = out.read_text()
    assert "S: 553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)" in text
    assert "exit:" not in text  # a socket has no exit code
    assert replay(out) == 0


def _client(port: list[int], ready: threading.Event, got: list[bytes]) -> None:
    ready.wait(10)
    with socket.create_connection(("127.0.0.1", port[0]), timeout=10) as sock:
        sock.sendall(b"HELO c\r\nMAIL FROM:<a@b>\r\nQUIT\r\n")  # pipelined, as swaks may
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        got.append(data)


@pytest.mark.live
def test_record_as_proxy(
    served: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.commands.record as record

    ready, port, got = threading.Event(), [0], list[bytes]()

    def on_ready(host: str, listening: int) -> None:
        record._say_listening(host, listening)
        port[0] = listening
        ready.set()

    monkeypatch.setattr(record, "proxy", functools.partial(record.proxy, on_ready=on_ready))
    client = threading.Thread(target=_client, args=(port, ready, got))
    client.start()
    out = tmp_path / "proxy.yaml"
    try:
        assert (
            run(_args("--smtp", f"127.0.0.1:{served}", "--listen", "127.0.0.1:0", "-o", str(out)))
            == 0
        )
    finally:
        client.join(10)
    assert got and got[0].endswith(b"221 mx.example.org\r\n")
    text = out.read_text()
    assert "C: HELO c\n        C: MAIL FROM:<a@b>\n" in text
    assert text.rstrip().endswith("S: 221 mx.example.org")
    assert "without --home" in text  # no control files: said in a comment
    assert f"listening 127.0.0.1:{port[0]}" in capsys.readouterr().out


def test_refuses_other_addresses() -> None:
    with pytest.raises(SystemExit):
        _args("--smtp", "192.0.2.1:25", "-o", "x.yaml")


@pytest.mark.live
def test_record_home_popup(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    maildir = tmp_path / "alice" / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    message = maildir / "cur" / "1000000000.1.mx:2,"
    message.write_bytes(b"Subject: hi\n\nbody\n")
    os.utime(message, (1_000_000_000, 1_000_000_000))  # maildir.c skips mail of this second
    (home / ".qmail-sim").mkdir(exist_ok=True)
    (home / ".qmail-sim" / "passwords").write_text(f"alice:wonderland:{tmp_path / 'alice'}\n")
    out = tmp_path / "pop.yaml"
    _stdin(monkeypatch, b"USER alice\nPASS wonderland\nSTAT\nUIDL\nQUIT\n")
    assert run(_args("--home", str(home), "--program", "qmail-popup", "-o", str(out))) == 0
    text = out.read_text()
    assert "        S: ~ ^\\+OK <\\d+\\.\\d+@mx\\.example\\.org>$\n        C: USER alice\n" in text
    assert "        S: +OK \n        C: PASS wonderland\n        S: +OK \n" in text
    assert "S: ~ ^\\+OK 1 \\d+$" in text and "S: ~ ^1 \\S+$" in text
    assert "alice:\n    password: wonderland" in text
    assert "# mailbox contents are not recorded" in text
