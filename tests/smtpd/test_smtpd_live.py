"""The live receive path on loopback: `qmail-sim serve --smtp`, smtplib, swaks, tcpserver."""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.smtpd import replies
from tests.subprocs import first_line, stop

pytestmark = pytest.mark.live

SESSION = (
    b"EHLO client.example\r\nMAIL FROM:<a@far.example>\r\nRCPT TO:<bob@mx.example.org>\r\n"
    b"RCPT TO:<x@far.example>\r\nDATA\r\nSubject: piped\r\n\r\nbody\r\n.\r\nQUIT\r\n"
)
EXPECTED = [
    b"220 mx.example.org ESMTP",
    b"250-mx.example.org",
    b"250-PIPELINING",
    b"250 8BITMIME",
    b"250 ok",
    b"250 ok",
    replies.NOGATEWAY.rstrip(),
    b"354 go ahead",
    b"250 ok",
    b"221 mx.example.org",
]


def _serve(home: Path, *options: str) -> Iterator[tuple[Path, int]]:
    cmd = [sys.executable, "-m", "harness.cli", "serve", "--smtp", "127.0.0.1:0", *options]
    proc = subprocess.Popen([*cmd, str(home)], stdout=subprocess.PIPE)
    try:
        line = first_line(proc)
        assert line.startswith(b"listening smtp 127.0.0.1:"), line
        yield home, int(line.rsplit(b":", 1)[1])
    finally:
        stop(proc)


@pytest.fixture
def served(home: Path) -> Iterator[tuple[Path, int]]:
    yield from _serve(home)


def messages(home: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((home / "queue" / "mess").rglob("*")) if p.is_file()]


def talk(port: int, data: bytes) -> list[bytes]:
    """Send ``data`` in one write, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    lines = b"".join(chunks).split(b"\r\n")[:-1]
    return [b"250 ok" if line.startswith(b"250 ok ") else line for line in lines]


def test_pipelined_session_in_one_write(served: tuple[Path, int]) -> None:
    home, port = served
    assert talk(port, SESSION) == EXPECTED
    (msg,) = messages(home)
    assert b"Received: from unknown (HELO client.example) (127.0.0.1)\n  by 127.0.0.1 " in msg
    assert msg.endswith(b"Subject: piped\n\nbody\n")


def test_smtplib(served: tuple[Path, int]) -> None:
    home, port = served
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        code, text = client.ehlo("client.example")
        assert code == 250 and text == b"mx.example.org\nPIPELINING\n8BITMIME"
        assert client.has_extn("pipelining")
        refused = client.sendmail(
            "a@far.example", ["bob@mx.example.org", "x@far.example"], "S: 1\r\n\r\n.dot\r\n"
        )
        assert refused == {"x@far.example": (553, replies.NOGATEWAY[4:-2])}
        assert client.noop() == (250, b"ok")
        assert client.help() == replies.HELP[4:-2]
        assert client.verify("bob") == (252, b"send some mail, i'll try my best")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("a@far.example", ["x@far.example"], "x")
    (msg,) = messages(home)
    assert msg.endswith(b"S: 1\n\n.dot\n")


def test_bare_lf_drops_the_connection(served: tuple[Path, int]) -> None:
    home, port = served
    data = (
        b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<bob@mx.example.org>\r\n"
        b"DATA\r\nbad\nline\r\n.\r\nNOOP\r\n"
    )
    assert talk(port, data)[-2:] == [b"354 go ahead", replies.STRAY_NEWLINE.rstrip()]
    assert messages(home) == []


@pytest.mark.external
def test_swaks(served: tuple[Path, int]) -> None:
    if shutil.which("swaks") is None:
        pytest.skip("swaks (Debian package swaks) is not installed")
    home, port = served
    cmd = [
        "swaks",
        "--server",
        f"127.0.0.1:{port}",
        "--to",
        "bob@mx.example.org",
        "--from",
        "a@far.example",
        "--helo",
        "swaks.example",
        "--pipeline",
    ]
    done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout.decode()
    assert b"<** " not in done.stdout
    (msg,) = messages(home)
    assert b"(HELO swaks.example)" in msg


@pytest.mark.external
def test_bin_qmail_smtpd_under_debian_tcpserver(home: Path) -> None:
    tcpserver = shutil.which("tcpserver")
    if tcpserver is None:
        pytest.skip("tcpserver (Debian package ucspi-tcp) is not installed")
    msg = _session_under(home, [tcpserver], {**os.environ, "DATABYTES": "100000"})
    assert b"invoked from network" in msg.split(b"\n", 1)[0]


def test_rules_set_relayclient_and_localname_sets_tcplocalhost(home: Path) -> None:
    from server import cdb
    from server.tcp.rules import compile_rules

    rules = home / "control" / "smtp.cdb"
    cdb.write(rules, compile_rules(b'127.0.0.1:allow,RELAYCLIENT="-r"\n:allow\n'))
    for _, port in _serve(home, "--rules", str(rules), "--localname", "mx.example.org"):
        assert talk(port, SESSION)[6] == b"250 ok"  # x@far.example relayed
    (msg,) = messages(home)
    assert b"\n  by mx.example.org with SMTP; " in msg
    (todo,) = (home / "queue" / "todo").iterdir()
    envelope = todo.read_bytes()
    assert envelope.endswith(b"\0Tbob@mx.example.org-r\0Tx@far.example-r\0")


def test_bin_qmail_smtpd_under_our_tcpserver(home: Path) -> None:
    _session_under(home, [sys.executable, "-m", "server", "--home", str(home), "tcpserver"], None)


def _session_under(home: Path, tcpserver: list[str], env: dict[str, str] | None) -> bytes:
    """One SMTP session through bin/qmail-smtpd under ``tcpserver``; the queued message."""
    options = ["-1", "-q", "-R", "-H", "-l", "mx.example.org", "127.0.0.1", "0"]
    cmd = [*tcpserver, *options, str(home / "bin" / "qmail-smtpd")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    try:
        port = int(first_line(proc).strip())
        assert talk(port, SESSION) == EXPECTED
    finally:
        stop(proc)
    (msg,) = messages(home)
    assert b"Received: from unknown (HELO client.example) (127.0.0.1)\n  by mx.example.org " in msg
    return msg
