"""``qmail-sim serve`` as root on a split home keeps qmail's privilege split.

qmail-smtpd runs as qmaild and queues through the queue service as qmailq
("invoked from network", qmail-send's ``info msg`` says ``uid`` qmaild);
qmail-send and its helpers run as qmail-start makes them; a user's ``.qmail``
program runs as that user. Needs root and qmail's users (.ci/qmail-users).
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.local import newu
from server.privsep import QmailIds
from tests.procs import connects, free_port, uids_of, until
from tests.splithome import make_split_home, public_dir

__all__ = ["public_dir"]  # a fixture, used by name

pytestmark = pytest.mark.live

BOB = (4701, 4701)


@dataclass
class Served:
    home: Path
    ids: QmailIds
    bob: Path
    port: int
    log: Path


@pytest.fixture
def served(public_dir: Path) -> Iterator[Served]:
    split = make_split_home(public_dir)
    bob = public_dir / "bob"
    for sub in ("tmp", "new", "cur"):
        (bob / "Maildir" / sub).mkdir(parents=True)
    (bob / ".qmail").write_text("|id -u > who; id -g >> who\n./Maildir/\n")
    for path in [bob, *bob.rglob("*")]:
        os.chown(path, *BOB)
    assign = f"=bob:bob:{BOB[0]}:{BOB[1]}:{bob}:::\n.\n"
    (split.home / "users" / "assign").write_text(assign)
    newu.build(split.home)
    port = free_port()
    log = public_dir / "serve.out"
    argv = [sys.executable, "-m", "harness.cli", "serve", str(split.home)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--smtp", f"127.0.0.1:{port}", "--send"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        until("serve's listening lines", lambda: b"listening delivery" in log.read_bytes())
        assert connects(port)
        yield Served(split.home, split.ids, bob, port, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_each_part_runs_as_its_user(served: Served) -> None:
    ids, home = served.ids, str(served.home)
    assert uids_of("--queue-service", home) >= {ids.qmailq}
    assert uids_of("--queue-socket", home) == {ids.qmaild}
    assert uids_of(f"{home}/bin/qmail-send") == {ids.qmails}
    assert uids_of(f"{home}/bin/qmail-clean") == {ids.qmailq}
    assert uids_of(f"{home}/bin/qmail-rspawn") == {ids.qmailr}
    assert uids_of(f"{home}/bin/qmail-lspawn") == {0}


def test_mail_from_the_network_reaches_the_user_as_the_user(served: Served) -> None:
    with smtplib.SMTP("127.0.0.1", served.port, timeout=30) as smtp:
        smtp.sendmail("alice@example.org", ["bob@mx.example.org"], b"Subject: split\r\n\r\nhi\r\n")
    new = served.bob / "Maildir" / "new"
    until("the delivery", lambda: any(new.iterdir()))
    (path,) = new.iterdir()
    assert (path.stat().st_uid, path.stat().st_gid) == BOB
    text = path.read_bytes()
    assert re.search(rb"^Received: \(qmail \d+ invoked from network\); ", text, re.M)
    # the .qmail program ran as bob, never as root
    assert (served.bob / "who").read_text().split() == [str(BOB[0]), str(BOB[1])]
    log = served.log.read_text()
    assert re.search(
        rf"^info msg \d+: bytes \d+ from <alice@example.org> qp \d+ uid "
        rf"{served.ids.qmaild}$",
        log,
        re.M,
    ), log


def test_a_refused_message_then_an_accepted_one_on_one_connection(served: Served) -> None:
    """The queue run opens at DATA (as qmail_open() before the 354): a message
    refused for databytes ends its run and leaves nothing; the next message's
    "qp" is the pid in its qmail-queue Received line."""
    (served.home / "control" / "databytes").write_text("200\n")  # read at each connection
    with smtplib.SMTP("127.0.0.1", served.port, timeout=30) as smtp:
        for body, want in ((b"Subject: big\r\n\r\n" + b"x" * 300 + b"\r\n", 552), (b"hi\r\n", 250)):
            smtp.mail("alice@example.org")
            smtp.rcpt("bob@mx.example.org")
            code, text = smtp.data(b"Subject: split\r\n\r\n" + body)
            assert code == want, text
    qp = int(text.split()[-1])  # "250 ok 1700000000 qp N"
    new = served.bob / "Maildir" / "new"
    until("the delivery", lambda: any(new.iterdir()))
    (path,) = new.iterdir()
    assert re.search(
        rb"^Received: \(qmail %d invoked from network\); " % qp, path.read_bytes(), re.M
    )
    queue = served.home / "queue"
    # the delivered message is cleaned away; the refused one left nothing to clean
    until(
        "the queue empties",
        lambda: (
            not [
                p
                for p in queue.rglob("*")
                if p.is_file() and p.parent.parent.name in ("mess", "info")
            ]
        ),
    )
    assert not any((queue / "todo").iterdir()) and not any((queue / "pid").iterdir())
    assert not any((queue / "intd").iterdir())


def _processes(pattern: str) -> dict[int, list[str]]:
    """The argv of every process whose command line contains ``pattern``, by pid."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if pattern.encode() in b" ".join(argv):
            found[int(pid)] = [a.decode() for a in argv if a]
    return found


def _sockets(pid: int) -> int:
    """How many sockets process ``pid`` holds open."""
    fds = Path(f"/proc/{pid}/fd")
    return sum(os.readlink(fd).startswith("socket:") for fd in fds.iterdir())


def test_two_qmail_smtpd_serves_one_accepting_one_helping(served: Served) -> None:
    """As tcpserver's children run SMTP sessions side by side, two serves as
    qmaild do: the first accepts under tcpserver's -c limit (40 by default)
    and hands sessions to the second when it is busy."""
    processes = _processes("--queue-socket")
    ours = {pid: argv for pid, argv in processes.items() if f"{served.home}" in argv}
    smtpds = list(ours.values())  # (another test's serve may run beside this one)
    assert len(smtpds) == 2
    [helper] = [pid for pid, argv in ours.items() if "--handed-fd" in argv]
    for argv in smtpds:
        assert "--listen-fd" in argv
        assert argv[argv.index("--concurrency") + 1] == "40"
    assert sorted("--handoff-fd" in argv for argv in smtpds) == [False, True]
    assert sorted("--handed-fd" in argv for argv in smtpds) == [False, True]
    # sessions one after another are all served, and so are several at once,
    # some of them by the helper
    for i in range(3):
        with smtplib.SMTP("127.0.0.1", served.port, timeout=30) as smtp:
            assert smtp.noop()[0] == 250, i
    idle = _sockets(helper)
    at_once = [smtplib.SMTP("127.0.0.1", served.port, timeout=30) for _ in range(4)]
    try:
        for i, smtp in enumerate(at_once):
            assert smtp.noop()[0] == 250, i
        assert _sockets(helper) > idle  # it serves some of them
    finally:
        for smtp in at_once:
            smtp.quit()
