"""The queue service (server.queue.service): qmail-queue as qmailq, for local callers.

A process running as qmailq queues for whoever connects, worded by the
caller's uid as the kernel reports it (SO_PEERCRED), as the setuid
qmail-queue words by its real uid. Needs root and qmail's users.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from server import privsep
from server.queue.service import queue_via
from tests.queue.service_fixtures import public_dir, service, split
from tests.splithome import Caller, SplitHome

__all__ = ["public_dir", "service", "split"]  # fixtures, used by name

MESSAGE = b"Subject: service\n\nbody\n"
ENVELOPE = b"Fa@example.org\0Tb@example.org\0\0"


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
