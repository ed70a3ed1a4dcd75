"""One connection to the queue service, several qmail-queue runs (server.queue.service,
server.queue.service_async): each request is its own run, in qmail-queue's order.

Needs root and qmail's users, as tests/queue/test_queue_service.py: the
service runs as qmailq in a forked child; the caller here is root.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from pathlib import Path

from server.queue import codes
from server.queue.envelope import encode_envelope
from server.queue.service import FRAME_LENGTH, frames
from server.queue.service_async import ServicePool, request_end
from tests.queue.service_fixtures import files, public_dir, service, split
from tests.splithome import SplitHome

__all__ = ["public_dir", "service", "split"]  # fixtures, used by name

ENVELOPE = encode_envelope("a@example.org", ["b@example.org"])


def request(message: bytes, envelope: bytes = ENVELOPE) -> bytes:
    return b"".join([*frames(message), request_end(envelope)])


def read_answer(conn: socket.socket) -> tuple[int, int] | None:
    """One answer off ``conn``; None when the service hung up instead (a reset
    too: closing with our request unread makes the kernel send one)."""
    data = bytearray()
    fields: list[bytes] = []
    while len(fields) < 2:
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            try:
                chunk = conn.recv(4096)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            data += chunk
        n = int.from_bytes(data[:4], "big")
        fields.append(bytes(data[4 : 4 + n]))
        del data[: 4 + n]
    return int(fields[0]), int(fields[1])


def test_requests_one_after_another_on_one_connection(split: SplitHome, service: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(os.fspath(service))
        answers = []
        for body in (b"Subject: one\n\n1\n", b"Subject: two\n\n2\n"):
            conn.sendall(request(body))
            answers.append(read_answer(conn))
    assert [a[0] for a in answers if a] == [codes.OK, codes.OK]
    qps = [a[1] for a in answers if a]
    assert len(set(qps)) == 2  # a run, and a pid, per request
    messes = files(split, "mess")
    assert len(messes) == 2 and len(files(split, "todo")) == 2
    texts = sorted(m.read_bytes() for m in messes)
    for qp, text in zip(sorted(qps), texts, strict=True):
        assert re.match(rb"Received: \(qmail %d invoked by uid 0\); " % qp, text)
    assert files(split, "pid") == []


def test_after_a_failure_the_service_hangs_up(split: SplitHome, service: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(os.fspath(service))
        conn.sendall(request(b"Subject: bad\n\n", b"Xnonsense"))
        answer = read_answer(conn)
        assert answer is not None and answer[0] == 91  # qmail-queue: envelope format error
        try:
            conn.sendall(request(b"Subject: next\n\n"))
        except BrokenPipeError:
            pass  # it has hung up already
        else:
            assert read_answer(conn) is None  # not read: the request may not have ended
    assert files(split, "todo") == []


def test_hanging_up_between_requests_leaves_nothing(split: SplitHome, service: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(os.fspath(service))
        conn.sendall(request(b"Subject: one\n\n"))
        answer = read_answer(conn)
        assert answer is not None and answer[0] == codes.OK
        conn.sendall(FRAME_LENGTH.pack(3)[:5])  # a length cut short: no run starts
    # the service sees the hang-up; nothing but the first message is in the queue
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(os.fspath(service))
        probe.sendall(request(b"Subject: probe\n\n"))
        assert read_answer(probe) is not None
    assert len(files(split, "todo")) == 2
    assert files(split, "pid") == []


async def _pool_session(path: Path) -> tuple[list[tuple[int, int]], int]:
    pool = ServicePool(path, keep=4)
    answers = []
    first = await pool.open()
    writer = first.conn[1] if first.conn else None
    await first.put(b"Subject: one\n\n")
    answers.append(await first.close(ENVELOPE, b"body\n"))
    second = await pool.open()
    reused = int(second.conn is not None and second.conn[1] is writer)
    answers.append(await second.close(ENVELOPE, b"Subject: two\n\nbody\n"))
    third = await pool.open()
    await third.put(b"Subject: abandoned\n\n" + b"x" * 1000)
    third.abandon()  # the client went away mid-message
    answers.append(await (await pool.open()).close(b"Xnonsense", b"Subject: bad\n\n"))
    answers.append(await (await pool.open()).close(ENVELOPE, b"Subject: last\n\n"))
    pool.close()
    await asyncio.sleep(0)
    return answers, reused


def test_the_pool_reuses_a_connection_and_drops_it_after_a_failure(
    split: SplitHome, service: Path
) -> None:
    answers, reused = asyncio.run(_pool_session(service))
    assert [code for code, _qp in answers] == [codes.OK, codes.OK, 91, codes.OK]
    assert reused == 1
    todo = {p.name for p in files(split, "todo")}
    queued = [m for m in files(split, "mess") if m.name in todo]
    texts = sorted(m.read_bytes().split(b"\n", 1)[1] for m in queued)
    assert texts == [b"Subject: last\n\n", b"Subject: one\n\nbody\n", b"Subject: two\n\nbody\n"]
    assert len(files(split, "todo")) == 3
    assert files(split, "pid") == []


def test_the_pool_without_a_service_is_a_temporary_failure(public_dir: Path) -> None:
    async def attempt() -> tuple[int, int]:
        run = await ServicePool(public_dir / "nobody-listens", keep=1).open()
        await run.put(b"Subject: x\n\n")
        return await run.close(ENVELOPE)

    assert asyncio.run(attempt()) == (111, 0)


def _connect(service: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(os.fspath(service))
    conn.settimeout(30)  # an upper bound only: a hung service fails the test
    return conn


def test_a_request_sent_before_the_answer_waits_for_it(split: SplitHome, service: Path) -> None:
    """The service reads a caller's next request only once it has answered the
    one before: both are queued, and answered in order."""
    with _connect(service) as conn:
        conn.sendall(request(b"Subject: one\n\n1\n") + request(b"Subject: two\n\n2\n"))
        answers = [read_answer(conn), read_answer(conn)]
    assert [a and a[0] for a in answers] == [codes.OK, codes.OK]
    assert len(files(split, "todo")) == 2


def test_a_caller_half_way_holds_up_no_other(split: SplitHome, service: Path) -> None:
    """One thread serves every caller: one stopped inside its message waits
    alone, while requests of others are read, queued and answered, several
    ended together (each message its own files, in qmail-queue's order)."""
    whole = request(b"Subject: half\n\n" + b"x" * 1000 + b"\n")
    with _connect(service) as slow:
        slow.sendall(whole[:500])
        others = [_connect(service) for _ in range(5)]
        try:
            for n, conn in enumerate(others):
                conn.sendall(request(b"Subject: %d\n\nbody\n" % n))
            answers = [read_answer(conn) for conn in others]
        finally:
            for conn in others:
                conn.close()
        assert [a and a[0] for a in answers] == [codes.OK] * 5
        assert len(files(split, "todo")) == 5
        slow.sendall(whole[500:])
        assert (read_answer(slow) or (None,))[0] == codes.OK
    assert len(files(split, "todo")) == 6 and files(split, "pid") == []
    assert len(files(split, "intd")) == 6  # each todo/N a link of its intd/N
