"""Differential test: our qmail-qmqpc against netqmail-1.06's, on the same server.

Both get the same message on fd 0, the same envelope on fd 1 and the same
control/qmqpservers (netqmail's reads it from /var/qmail-ref/control, so it
runs in a mount namespace of its own where that directory is ours), and talk
to the same scripted QMQP server on port 628 of a loopback address: the
request it receives and the exit code must be the same. Needs root (port
628, the namespace) and the reference home; skips otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.home import setup
from tests.targets import REFERENCE, needs_reference


def _addresses() -> tuple[str, str]:
    """The scripted server's address and one where nothing listens: a pair for
    each pytest-xdist worker, since each worker that runs a test of this module
    binds its own server on port 628 (the port qmail-qmqpc dials)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    return f"127.0.62.{12 + 2 * worker}", f"127.0.62.{13 + 2 * worker}"


SERVER_IP, SILENT_IP = _addresses()

pytestmark = [
    pytest.mark.external,
    needs_reference("qmail-qmqpc"),
    pytest.mark.skipif(os.geteuid() != 0, reason="port 628 and a mount namespace need root"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare(1) is not installed"),
]


class Server:
    """Accepts connections one at a time; answers each with ``answer`` once
    the whole request (one netstring) has come, and keeps what it got."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((SERVER_IP, 628))
            self.sock.listen(5)
        except OSError:  # closed here, not by a later test's garbage collection
            self.sock.close()
            raise
        self.answer = b""
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not _whole(data) and (chunk := conn.recv(65536)):
                    data += chunk
                self.requests.append(data)
                conn.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


def _whole(data: bytes) -> bool:
    head, colon, _ = data.partition(b":")
    return bool(colon) and head.isdigit() and len(data) >= len(head) + 2 + int(head)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    found = Server()
    yield found
    found.close()


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("qmqpc") / "home"
    setup(home, me="client.example")
    return home


def _qmqpc(argv: list[str], message: bytes, envelope: bytes) -> int:
    """Run a qmail-qmqpc: message on fd 0, envelope on fd 1 (a pipe it reads)."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as w:
        w.write(envelope)
    try:
        done = subprocess.run(argv, input=message, stdout=read_end, timeout=60, check=False)
    finally:
        os.close(read_end)
    return done.returncode


def _both(
    server: Server, ours: Path, servers: str | None, envelope: bytes, answer: bytes
) -> tuple[tuple[int, list[bytes]], tuple[int, list[bytes]]]:
    control = ours / "control"
    (control / "qmqpservers").unlink(missing_ok=True)
    if servers is not None:  # the parameters name SERVER and SILENT, the same on every worker
        servers = servers.replace("SERVER", SERVER_IP).replace("SILENT", SILENT_IP)
        (control / "qmqpservers").write_text(servers)
    server.answer = answer
    message = b"Subject: q\n\nhello\n"
    results = []
    theirs = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$1" && exec "$2"']
    theirs += [str(control), str(REFERENCE / "control"), str(REFERENCE / "bin" / "qmail-qmqpc")]
    for argv in (theirs, [str(ours / "bin" / "qmail-qmqpc")]):
        server.requests.clear()
        code = _qmqpc(argv, message, envelope)
        results.append((code, list(server.requests)))
    return results[0], results[1]


ENVELOPE = b"Fa@b\0Tbob@example.org\0Tc@d\0\0"


@pytest.mark.parametrize(
    ("servers", "envelope", "answer", "code"),
    [
        ("SERVER\n", ENVELOPE, b"23:Kok 1700000000 qp 42,", 0),
        ("SERVER\n", ENVELOPE, b"12:Ztry later,", 71),
        ("SERVER\n", ENVELOPE, b"6:Dnope!,", 31),
        ("SERVER\n", ENVELOPE, b"", 74),
        ("SERVER\n", ENVELOPE, b"3:xyz,", 74),
        ("SILENT\n", ENVELOPE, b"", 73),
        ("hub.example\nSILENT\nSERVER\n", ENVELOPE, b"3:Kok,", 0),
        ("", ENVELOPE, b"", 55),
        (None, ENVELOPE, b"", 55),
        ("SERVER\n", b"Fa@b\0Tb\0", b"", 91),
        ("SERVER\n", b"Xa@b\0\0", b"", 91),
        ("SERVER\n", b"F\0\0", b"3:Kok,", 0),
    ],
)
def test_same_request_and_exit_as_netqmail(
    server: Server, ours: Path, servers: str | None, envelope: bytes, answer: bytes, code: int
) -> None:
    theirs, mine = _both(server, ours, servers, envelope, answer)
    assert mine == theirs
    assert mine[0] == code
