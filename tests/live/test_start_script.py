"""qmail's classic start script, unchanged, on a split home of ours.

The lines every qmail setup guide gives (qmail's rc, INSTALL's "tcpserver"
lines), with only the addresses changed to loopback and free ports:

    env - PATH="$PATH:DIR/bin" qmail-start ./Maildir/ splogger qmail
    tcpserver -x tcp.smtp.cdb -u UID(qmaild) -g GID(nofiles) 127.0.0.1 PORT DIR/bin/qmail-smtpd
    tcpserver -x tcp.pop3.cdb 127.0.0.1 PORT DIR/bin/qmail-popup HOST CHECKPASSWORD \\
        DIR/bin/qmail-pop3d Maildir

Debian's tcpserver and tcprules, swaks as the client, Python's poplib as the
reader; CHECKPASSWORD is ours (server.pop3.checkpassword), users from the
home's password file. The message must arrive in the user's Maildir owned by the user, and
every daemon must run as the user qmail-start.c gives it. Needs root, qmail's
users (.ci/qmail-users) and ucspi-tcp and swaks (Debian packages).
"""

from __future__ import annotations

import os
import poplib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from functools import partial
from pathlib import Path

import pytest

from server.local import newu
from tests.procs import connects, free_port, uids_of, until
from tests.splithome import make_split_home, public_dir  # noqa: F401 - public_dir is a fixture

pytestmark = [pytest.mark.live, pytest.mark.external]

USER_IDS = (4601, 4601)


def _need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian's ucspi-tcp and swaks)")


def _rules(path: Path, text: str) -> Path:
    cdb = path.with_suffix(".cdb")
    subprocess.run(
        ["tcprules", str(cdb), str(path) + ".tmp"], input=text.encode(), check=True, timeout=30
    )
    return cdb


def _checkpassword(path: Path, home: Path) -> Path:
    """CHECKPASSWORD: ours (DJB's is not a qmail program, so a home has none)."""
    path.write_text(
        f'#!/bin/sh\nexec {sys.executable} -m server --home {home} checkpassword "$@"\n'
    )
    path.chmod(0o755)
    return path


@dataclass
class Running:
    home: Path
    user_home: Path
    smtp_port: int
    pop3_port: int
    procs: list[subprocess.Popen[bytes]]


@pytest.fixture
def running(public_dir: Path) -> Iterator[Running]:  # noqa: F811 - the fixture above
    _need("tcpserver", "tcprules", "swaks")
    split = make_split_home(public_dir)
    home, ids = split.home, split.ids
    bob = public_dir / "bob"
    for sub in ("tmp", "new", "cur"):
        (bob / "Maildir" / sub).mkdir(parents=True)
    for owned in [bob, *bob.rglob("*")]:
        os.chown(owned, *USER_IDS)
    (home / "users" / "assign").write_text(f"=bob:bob:{USER_IDS[0]}:{USER_IDS[1]}:{bob}:::\n.\n")
    newu.build(home)
    (home / ".qmail-sim" / "passwords").write_text(f"bob:hunter2:{bob}\n")
    smtp_cdb = _rules(public_dir / "tcp.smtp", '127.:allow,RELAYCLIENT=""\n:allow\n')
    pop3_cdb = _rules(public_dir / "tcp.pop3", ":allow\n")
    smtp_port, pop3_port = free_port(), free_port()
    path = f"{os.environ.get('PATH', '/usr/bin:/bin')}:{home}/bin"
    smtpd, popup, pop3d = (f"{home}/bin/{n}" for n in ("qmail-smtpd", "qmail-popup", "qmail-pop3d"))
    checkpassword = _checkpassword(public_dir / "checkpassword", home)
    lines = [
        f"env - PATH={path} qmail-start ./Maildir/ splogger qmail".split(),
        f"tcpserver -x {smtp_cdb} -u {ids.qmaild} -g {ids.nofiles} 127.0.0.1 {smtp_port} "
        f"{smtpd}".split(),
        f"tcpserver -x {pop3_cdb} 127.0.0.1 {pop3_port} {popup} mx.example.org "
        f"{checkpassword} {pop3d} Maildir".split(),
    ]
    procs = [
        subprocess.Popen(
            line,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": path},
        )
        for line in lines
    ]
    try:
        for port in (smtp_port, pop3_port):
            until(f"a listener on {port}", partial(connects, port))
        yield Running(home, bob, smtp_port, pop3_port, procs)
    finally:
        for proc in procs:
            with _quiet():
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is ProcessLookupError


def test_a_message_travels_the_classic_setup(running: Running) -> None:
    server = f"127.0.0.1:{running.smtp_port}"
    swaks = subprocess.run(
        [
            *f"swaks --server {server} --to bob@mx.example.org --from alice@example.org".split(),
            *("--header", "Subject: classic", "--body", "hello bob"),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert swaks.returncode == 0, swaks.stdout.decode("latin-1")[-2000:]
    new = running.user_home / "Maildir" / "new"
    until("the delivery", lambda: any(new.iterdir()))
    (path,) = new.iterdir()
    st = path.stat()
    assert (st.st_uid, st.st_gid) == USER_IDS  # delivered as bob, by qmail-local as bob
    message = message_from_bytes(path.read_bytes())
    assert message["Delivered-To"] == "bob@mx.example.org"
    received = message.get_all("Received")
    # qmail-queue's line on top, run by qmail-smtpd as qmaild; qmail-smtpd's below
    assert received is not None and "invoked from network" in received[0]
    assert received[1].startswith("from unknown (HELO ")

    # qmail-pop3d leaves out what arrived this very second (maildir.c)
    until("the next second", lambda: time.time() >= int(st.st_mtime) + 1)
    pop = poplib.POP3("127.0.0.1", running.pop3_port, timeout=30)
    try:
        pop.user("bob")
        pop.pass_("hunter2")
        _resp, lines, _octets = pop.retr(1)
        assert b"hello bob" in b"\n".join(lines)
    finally:
        pop.quit()


def test_each_daemon_runs_as_qmail_start_makes_it(running: Running) -> None:
    from server.privsep import QmailIds

    ids = QmailIds.of_home(running.home)
    assert ids is not None
    bin_dir = f"{running.home}/bin/"
    expected = {
        "qmail-send": {ids.qmails},
        "qmail-clean": {ids.qmailq},
        "qmail-rspawn": {ids.qmailr},
        "qmail-lspawn": {0},
        "splogger": {ids.qmaill},
    }
    for name, uids in expected.items():
        if name == "splogger":
            until("splogger", lambda: uids_of("splogger qmail"))
            assert uids_of("splogger qmail") == uids
        else:
            until(name, partial(uids_of, bin_dir + name))
            assert uids_of(bin_dir + name) == uids, name
