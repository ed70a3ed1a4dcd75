"""harness.simqueue: the simulator's queue service for programs run as a user."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from harness import simqueue
from server.home import setup
from server.privsep import QmailIds
from server.programs import QUEUE_SOCKET_FILE, ProgramContext, read_queue_socket
from server.qdir import qfn
from server.queue.core import message_ids, read_envelope
from server.queue.envelope import encode_envelope
from server.queue.service import queue_via
from server.runtime import virtual_runtime

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or QmailIds.from_system() is None,
    reason="the service is the simulator's as root, with qmail's users",
)


def test_queues_through_the_named_socket_until_closed(tmp_path: Path) -> None:
    home = tmp_path / "qmail"
    setup(home, me="mx.example.org")
    runtime, _clock = virtual_runtime(hostname="mx.example.org")
    runtime.fsync = False
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
    service = simqueue.start(ctx)
    assert service is not None
    try:
        path = read_queue_socket(home)
        assert path is not None and path.stat().st_mode & 0o777 == 0o666
        envelope = encode_envelope("a@x.org", ["b@y.org"])
        code, qp = queue_via(path, b"Subject: via\n\nbody\n", envelope)
        assert code == 0
    finally:
        service.close()
    queue = home / "queue"
    (msgid,) = message_ids(queue)
    assert read_envelope(qfn(queue, "todo", msgid)) == ("a@x.org", ["b@y.org"])
    received, rest = qfn(queue, "mess", msgid).read_bytes().split(b"\n", 1)
    assert received.startswith(f"Received: (qmail {qp} invoked by uid 0)".encode())
    assert rest == b"Subject: via\n\nbody\n"
    assert not (home / QUEUE_SOCKET_FILE).exists() and read_queue_socket(home) is None
    assert not path.exists()


def test_each_service_has_a_socket_of_its_own_in_one_directory(tmp_path: Path) -> None:
    runtime, _clock = virtual_runtime(hostname="mx.example.org")
    paths = []
    for name in ("one", "two"):
        home = tmp_path / name
        setup(home, me="mx.example.org")
        service = simqueue.start(ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO()))
        assert service is not None
        path = read_queue_socket(home)
        service.close()
        assert path is not None and not path.exists()  # a straggler finds no queue
        paths.append(path)
    first, second = paths
    assert first != second and first.parent == second.parent
    assert first.parent.stat().st_mode & 0o777 == 0o711


def test_services_open_at_once_each_queue_into_their_own_home(tmp_path: Path) -> None:
    runtime, _clock = virtual_runtime(hostname="mx.example.org")
    runtime.fsync = False
    homes = [tmp_path / "one", tmp_path / "two"]
    services = []
    for home in homes:
        setup(home, me="mx.example.org")
        ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
        services.append(simqueue.start(ctx))
    try:
        for home in reversed(homes):
            path = read_queue_socket(home)
            assert path is not None
            body = f"Subject: to {home.name}\n\n".encode()
            code, _qp = queue_via(path, body, encode_envelope("a@x.org", [f"{home.name}@y.org"]))
            assert code == 0
    finally:
        for service in services:
            assert service is not None
            service.close()
    for home in homes:
        queue = home / "queue"
        (msgid,) = message_ids(queue)
        assert read_envelope(qfn(queue, "todo", msgid)) == ("a@x.org", [f"{home.name}@y.org"])
