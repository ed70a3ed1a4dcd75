"""QMTP and QMQP on loopback: `qmail-sim serve --qmtp/--qmqp`, bin/ programs under
Debian's tcpserver, and a mini-qmail home (bin/qmail-queue -> qmail-qmqpc) whose
qmail-inject queues on a hub through qmail-qmqpd."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.home import make_mini, setup
from tests.qmqp.helpers import qmqp, qmtp
from tests.subprocs import first_line, stop

pytestmark = pytest.mark.live

#: a loopback address of its own for the mini-qmail hub, which must listen on port 628
HUB_IP = "127.0.62.8"


def _lines(proc: subprocess.Popen[bytes], count: int, timeout: float = 20.0) -> list[bytes]:
    """The first ``count`` lines of stdout, read from the descriptor (no buffer to miss)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    while data.count(b"\n") < count:
        ready, _, _ = select.select([fd], [], [], timeout)
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            raise AssertionError(f"the server said only {data!r}")
        data += chunk
    return data.split(b"\n")[:count]


def talk(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def queued(home: Path) -> list[tuple[bytes, bytes]]:
    """(message, envelope) of each queued message."""
    out = []
    for todo in sorted((home / "queue" / "todo").rglob("*")):
        if todo.is_file():
            mess = next((home / "queue" / "mess").rglob(todo.name))
            out.append((mess.read_bytes(), todo.read_bytes()))
    return out


def _ok_count(answer: bytes) -> int:
    return answer.count(b":Kok ")


def test_serve_qmtp_and_qmqp(home: Path) -> None:
    cmd = [sys.executable, "-m", "harness.cli", "serve", "--qmtp", "127.0.0.1:0"]
    cmd += ["--qmqp", "127.0.0.1:0", str(home)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        ports = {}
        for line in _lines(proc, 2):
            kind, address = line.split()[1:3]
            ports[kind] = int(address.rsplit(b":", 1)[1])
        two = qmtp(b"Subject: a\n\n1\n", b"a@b", [b"bob@mx.example.org"])
        two += qmtp(
            b"Subject: b\r\n\r\n2\r\n", b"", [b"eve@far.example", b"bob@mx.example.org"], b"\r"
        )
        answer = talk(ports[b"qmtp"], two)
        assert _ok_count(answer) == 2
        assert b"66:Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)," in answer
        answer = talk(ports[b"qmqp"], qmqp(b"Subject: c\n\n3\n", b"c@d", [b"eve@far.example"]))
        assert _ok_count(answer) == 1
    finally:
        stop(proc)
    found = queued(home)
    assert len(found) == 3
    assert sum(b"with QMTP; " in m for m, _ in found) == 2
    assert any(b"with QMQP; " in m and e.endswith(b"Fc@d\0Teve@far.example\0") for m, e in found)


def test_bin_qmail_qmtpd_under_debian_tcpserver(home: Path) -> None:
    tcpserver = shutil.which("tcpserver")
    if tcpserver is None:
        pytest.skip("tcpserver (Debian package ucspi-tcp) is not installed")
    cmd = [tcpserver, "-1", "-q", "-R", "-H", "127.0.0.1", "0", str(home / "bin" / "qmail-qmtpd")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        port = int(first_line(proc).strip())
        answer = talk(port, qmtp(b"Subject: t\n\nx\n", b"a@b", [b"bob@mx.example.org"]))
    finally:
        stop(proc)
    assert _ok_count(answer) == 1 and answer.endswith(b",")
    [(message, _)] = queued(home)
    assert b"Received: from unknown (127.0.0.1)\n  by 127.0.0.1 with QMTP; " in message


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the hub listens on port 628 (QMQP's), which needs root"
)
def test_mini_qmail_injects_on_the_hub(home: Path, tmp_path: Path) -> None:
    tcpserver = shutil.which("tcpserver")
    if tcpserver is None:
        pytest.skip("tcpserver (Debian package ucspi-tcp) is not installed")
    client = tmp_path / "client"
    setup(client, me="client.example.org")
    make_mini(client, ["192.0.2.1x", HUB_IP])  # not an address: skipped, as ip_scan fails
    assert os.readlink(client / "bin" / "qmail-queue") == "qmail-qmqpc"
    cmd = [tcpserver, "-v", "-R", "-H", HUB_IP, "628", str(home / "bin" / "qmail-qmqpd")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 20)
        assert ready and b"status: 0/" in proc.stderr.readline()  # it listens
        done = subprocess.run(
            [str(client / "bin" / "qmail-inject")],
            input=b"To: bob@example.org\nSubject: mini\n\nhi\n",
            env={**os.environ, "QMAILUSER": "alice"},
            capture_output=True,
            timeout=60,
        )
    finally:
        stop(proc)
    assert done.returncode == 0, done.stderr
    [(message, envelope)] = queued(home)
    assert b"with QMQP; " in message and b"Subject: mini\n" in message
    assert envelope.endswith(b"Falice@client.example.org\0Tbob@example.org\0")
    assert not [p for p in (client / "queue" / "mess").rglob("*") if p.is_file()]


def test_mini_qmail_without_a_hub_is_a_temporary_failure(tmp_path: Path) -> None:
    client = tmp_path / "client"
    setup(client, me="client.example.org")
    make_mini(client, ["127.0.62.9"])  # nothing listens there
    done = subprocess.run(
        [str(client / "bin" / "qmail-inject")],
        input=b"To: bob@example.org\n\nhi\n",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 111
    assert b"connection to mail server rejected (#4.4.1)" in done.stderr
