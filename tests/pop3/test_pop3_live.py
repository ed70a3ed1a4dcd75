"""The live POP3 service on loopback, read by Python's poplib and by Debian's mpop."""

from __future__ import annotations

import asyncio
import os
import poplib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.home import setup
from server.pop3.live import Pop3Service, parse_hostport

pytestmark = pytest.mark.live

OLD = int(time.time()) - 3600


def _deliver(md: Path, name: str, data: bytes, mtime: int) -> None:
    path = md / "new" / name
    path.write_bytes(data)
    # distinct mtimes: equal ones come out in directory order, which varies
    os.utime(path, (mtime, mtime))


def _alice_home(tmp_path: Path) -> tuple[Path, Path]:
    """A home for pop.example.org whose user alice (password sesame) has an empty Maildir."""
    home = tmp_path / "qmail"
    setup(home, me="pop.example.org")
    alice = tmp_path / "alice"
    for sub in ("tmp", "new", "cur"):
        (alice / "Maildir" / sub).mkdir(parents=True)
    (home / ".qmail-sim" / "passwords").write_text(f"alice:sesame:{alice}\n")
    return home, alice


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    home, alice = _alice_home(tmp_path)
    md = alice / "Maildir"
    _deliver(md, f"{OLD}.1.h", b"Subject: first\n\nhello\n.\n", OLD)
    _deliver(md, f"{OLD}.2.h", b"Subject: second\n\nworld\n", OLD + 1)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    stop = asyncio.Event()
    service = Pop3Service.for_home(home)

    async def main() -> None:
        server = await service.start("127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await stop.wait()
            server.close()
            await service.aclose()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    ready.wait(10)
    try:
        yield port[0], alice
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def test_poplib(served: tuple[int, Path]) -> None:
    port, alice = served
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        assert pop.getwelcome().startswith(b"+OK <") and pop.getwelcome().endswith(
            b"@pop.example.org>"
        )
        with pytest.raises(poplib.error_proto, match="authorization first"):
            pop.stat()
        pop.user("alice")
        pop.pass_("sesame")
        assert pop.stat() == (2, 47)
        _, uidls, _ = pop.uidl()
        assert uidls == [f"1 {OLD}.1.h".encode(), f"2 {OLD}.2.h".encode()]
        _, lines, _ = pop.retr(1)
        assert lines == [b"Subject: first", b"", b"hello", b".", b""]  # ".." unstuffed
        _, lines, _ = pop.top(2, 0)
        assert lines == [b"Subject: second", b"", b""]
        pop.dele(1)
        with pytest.raises(poplib.error_proto, match="already deleted"):
            pop.dele(1)
        with pytest.raises(poplib.error_proto, match="not that many messages"):
            pop.dele(3)
    finally:
        pop.quit()
    assert os.listdir(alice / "Maildir" / "new") == []
    assert os.listdir(alice / "Maildir" / "cur") == [f"{OLD}.2.h:2,"]


def test_poplib_wrong_password(served: tuple[int, Path]) -> None:
    port, _ = served
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        pop.user("alice")
        with pytest.raises(poplib.error_proto, match="authorization failed"):
            pop.pass_("wrong")
    finally:
        pop.close()


@pytest.mark.external
def test_mpop_fetches_the_maildir(served: tuple[int, Path], tmp_path: Path) -> None:
    mpop = shutil.which("mpop")
    if mpop is None:
        pytest.skip("mpop is not installed (apt-get install mpop)")
    port, alice = served
    inbox = tmp_path / "inbox"
    for sub in ("tmp", "new", "cur"):
        (inbox / sub).mkdir(parents=True)
    config = tmp_path / "mpoprc"
    config.write_text(
        "account default\n"
        f"host 127.0.0.1\nport {port}\nauth user\nuser alice\n"
        "passwordeval echo sesame\ntls off\n"
        f"delivery maildir {inbox}\nkeep off\n"
        f"uidls_file {tmp_path / 'uidls'}\n"
    )
    config.chmod(0o600)
    done = subprocess.run(
        [mpop, "-C", str(config), "-q"], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    fetched = sorted((inbox / "new").iterdir())
    assert len(fetched) == 2
    bodies = b"".join(p.read_bytes() for p in fetched)
    assert b"Subject: first" in bodies and b"Subject: second" in bodies
    assert os.listdir(alice / "Maildir" / "new") == []
    assert os.listdir(alice / "Maildir" / "cur") == []


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:110") == ("127.0.0.1", 110)
    assert parse_hostport("[::1]:2110") == ("::1", 2110)
    with pytest.raises(ValueError):
        parse_hostport("localhost")


def test_qmail_sim_serve_pop3(tmp_path: Path) -> None:
    """``qmail-sim serve HOME --pop3 127.0.0.1:0`` as a process, read with poplib."""
    home, alice = _alice_home(tmp_path)
    _deliver(alice / "Maildir", f"{OLD}.9.h", b"Subject: served\n\nok\n", OLD)
    argv = [sys.executable, "-c", "from harness.cli import main; raise SystemExit(main())"]
    argv += ["serve", str(home), "--pop3", "127.0.0.1:0"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            assert line.startswith("listening pop3 127.0.0.1:"), line
            port = int(line.rsplit(":", 1)[1])
            pop = poplib.POP3("127.0.0.1", port, timeout=10)
            try:
                assert pop.getwelcome().endswith(b"@pop.example.org>")
                pop.user("alice")
                pop.pass_("sesame")
                assert pop.list()[1] == [b"1 20"]
            finally:
                pop.quit()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    assert os.listdir(alice / "Maildir" / "cur") == [f"{OLD}.9.h:2,"]


@pytest.mark.external
def test_bin_programs_under_debian_tcpserver(tmp_path: Path) -> None:
    """``tcpserver ... qmail-popup HOST checkpassword qmail-pop3d Maildir``, all processes."""
    tcpserver = shutil.which("tcpserver")
    if tcpserver is None:
        pytest.skip("tcpserver (Debian package ucspi-tcp) is not installed")
    home, alice = _alice_home(tmp_path)
    _deliver(alice / "Maildir", f"{OLD}.7.h", b"Subject: via tcpserver\n\nok\n", OLD)
    checkpassword = tmp_path / "checkpassword"
    checkpassword.write_text(
        f'#!/bin/sh\nexec {sys.executable} -m server --home {home} checkpassword "$@"\n'
    )
    checkpassword.chmod(0o755)
    bin_ = home / "bin"
    cmd = [tcpserver, "-1", "-q", "-R", "-H", "127.0.0.1", "0", str(bin_ / "qmail-popup")]
    cmd += ["pop.example.org", str(checkpassword), str(bin_ / "qmail-pop3d"), "Maildir"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline().strip())
            pop = poplib.POP3("127.0.0.1", port, timeout=30)
            try:
                pop.user("alice")
                pop.pass_("sesame")
                assert pop.stat() == (1, 27)
                assert pop.retr(1)[1][:1] == [b"Subject: via tcpserver"]
                pop.dele(1)
            finally:
                pop.quit()
        finally:
            proc.terminate()
            proc.wait(30)
    assert os.listdir(alice / "Maildir" / "new") == []
    assert os.listdir(alice / "Maildir" / "cur") == []
