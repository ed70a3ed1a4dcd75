"""The queue service (server.queue.service): qmail-queue as qmailq, for local callers.

A process running as qmailq queues for whoever connects, worded by the
caller's uid as the kernel reports it (SO_PEERCRED), as the setuid
qmail-queue words by its real uid. Needs root and qmail's users.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from server import privsep
from server.programs import ProgramContext
from server.queue.service import QueueService, queue_via
from server.runtime import real_runtime
from tests.splithome import Caller, SplitHome, make_split_home, public_dir

__all__ = ["public_dir"]  # a fixture, used by name

MESSAGE = b"Subject: service\n\nbody\n"
ENVELOPE = b"Fa@example.org\0Tb@example.org\0\0"


@pytest.fixture
def split(public_dir: Path) -> SplitHome:
    return make_split_home(public_dir, need_wrapper=False)


@pytest.fixture
def service(split: SplitHome, public_dir: Path) -> Iterator[Path]:
    """A service process as qmailq listening on public_dir/run/queue."""
    run = public_dir / "run"
    run.mkdir()
    os.chown(run, split.ids.qmailq, split.ids.qmail)
    path = run / "queue"
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the service: never returns
        try:
            os.close(ready_r)
            privsep.become(split.ids.qmailq, split.ids.qmail)
            os.umask(0o033)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(str(path))
            os.chmod(path, 0o777)
            sock.listen(16)
            os.write(ready_w, b"!")
            ctx = ProgramContext(
                home=split.home, runtime=real_runtime(), stderr=io.BytesIO(), inprocess=False
            )
            QueueService(ctx, split.ids).serve_forever(sock)
        finally:
            os._exit(0)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"!"
    os.close(ready_r)
    try:
        yield path
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def queue_as(caller: Caller, path: Path) -> int:
    """queue_via from a child running as ``caller``; its exit code is the answer."""
    pid = os.fork()
    if pid == 0:
        code = 120
        try:
            privsep.become(caller.uid, caller.gid)
            code, _qp = queue_via(path, MESSAGE, ENVELOPE)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status)


def queued(split: SplitHome) -> tuple[Path, bytes, bytes]:
    queue = split.home / "queue"
    [mess] = [p for p in (queue / "mess").rglob("*") if p.is_file()]
    return mess, mess.read_bytes(), (queue / "todo" / mess.name).read_bytes()


def test_a_caller_is_worded_by_its_uid(split: SplitHome, service: Path) -> None:
    nobody = Caller.named("nobody")
    assert queue_as(nobody, service) == 0
    mess, text, todo = queued(split)
    assert re.match(rb"Received: \(qmail \d+ invoked by uid %d\); " % nobody.uid, text)
    assert text.endswith(b"\n" + MESSAGE)
    assert todo.startswith(b"u%d\0p" % nobody.uid)
    assert mess.stat().st_uid == split.ids.qmailq


def test_qmaild_is_from_network(split: SplitHome, service: Path) -> None:
    assert queue_as(Caller.named("qmaild"), service) == 0
    _mess, text, todo = queued(split)
    assert re.match(rb"Received: \(qmail \d+ invoked from network\); ", text)
    assert todo.startswith(b"u%d\0p" % split.ids.qmaild)


def test_no_service_is_a_temporary_failure(split: SplitHome, public_dir: Path) -> None:
    assert queue_via(public_dir / "nobody-listens", MESSAGE, ENVELOPE) == (111, 0)
    assert not [p for p in (split.home / "queue" / "mess").rglob("*") if p.is_file()]


def test_a_bad_envelope_is_refused_and_nothing_stays(split: SplitHome, service: Path) -> None:
    pid = os.fork()
    if pid == 0:
        code = 120
        try:
            privsep.become(Caller.named("nobody").uid, Caller.named("nobody").gid)
            code, _ = queue_via(service, MESSAGE, b"Xnonsense")
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 91  # qmail-queue: envelope format error
    assert not [p for p in (split.home / "queue" / "todo").rglob("*") if p.is_file()]
