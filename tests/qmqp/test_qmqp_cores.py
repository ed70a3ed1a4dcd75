"""qmail-qmqpd's core (server.qmqp.qmqpd) and qmail-qmqpc's request and exit codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.steps.netstrings import INCOMPLETE, server_netstrings
from server.qmqp import qmqpc
from server.qmqp.framing import READ_SIZE
from server.qmqp.qmqpd import QmqpCore
from server.qmqp.replies import BAD_ADDRESS
from server.queue import codes
from tests.qmqp.helpers import Played, bodies, chunked, config, ns, play, qmqp

NOW = 1_700_000_000


def run(data: bytes, size: int = READ_SIZE) -> Played:
    core = QmqpCore(config(rcpthosts=None), now=lambda: NOW, date=lambda t: b"DATE")
    return play(core, chunked(data, size))


@pytest.mark.parametrize("size", [1, 5, READ_SIZE])
def test_one_message_one_answer(size: int) -> None:
    played = run(qmqp(b"Subject: q\n\nx\n", b"a@b", [b"bob@example.org", b"eve@far"]), size)
    assert (played.code, played.output) == (0, ns(b"Kok %d qp 1001" % NOW))
    [queued] = played.queued
    assert queued.message == (
        b"Received: from unknown (unknown)\n  by unknown with QMQP; DATE\nSubject: q\n\nx\n"
    )
    assert queued.recipients == (b"bob@example.org", b"eve@far")


def test_a_bad_address_refuses_the_message() -> None:
    for sender, rcpts in ((b"a\0", [b"b"]), (b"a", [b"b", b"x" * 1000])):
        played = run(qmqp(b"x", sender, rcpts))
        assert (played.output, played.queued) == (ns(BAD_ADDRESS), [])


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"5:" + ns(b"hello") + b",", 100),
        (b"0" * 101 + b":", 100),
        (b"9999999999:", 111),
        (qmqp(b"x", b"a", [b"b"])[:-1] + b";", 100),
        (qmqp(b"x", b"a", [b"b"])[:-1], 0),
    ],
)
def test_exits_without_an_answer(data: bytes, code: int) -> None:
    played = run(data)
    assert (played.code, played.output, played.queued) == (code, b"", [])


@given(st.binary(max_size=200))
def test_any_input_ends_in_an_exit(data: bytes) -> None:
    assert run(data, 1).code in (0, 100, 111)


def _envelope(sender: bytes, rcpts: list[bytes]) -> bytes:
    return b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0"


@given(
    bodies,
    st.binary(max_size=20).filter(lambda s: b"\0" not in s),
    st.lists(st.binary(min_size=1, max_size=20).filter(lambda s: b"\0" not in s), max_size=4),
)
def test_qmqpc_requests_are_what_qmqpd_reads(
    body: bytes, sender: bytes, rcpts: list[bytes]
) -> None:
    request = qmqpc.request(body, _envelope(sender, rcpts) + b"trailing")
    assert request == qmqp(body, sender, rcpts)
    [queued] = run(request).queued
    assert (queued.sender, list(queued.recipients)) == (sender, rcpts)
    assert queued.message.endswith(body)


@pytest.mark.parametrize("envelope", [b"", b"Fa", b"\0\0", b"Xa\0\0", b"Fa\0Xb\0\0", b"Fa\0Tb\0"])
def test_qmqpc_bad_envelopes_are_91(envelope: bytes) -> None:
    with pytest.raises(qmqpc.Exit) as caught:
        qmqpc.request(b"m", envelope)
    assert caught.value.code == codes.ENVELOPE_FORMAT


class FakeConnection:
    def __init__(self, answer: list[bytes]) -> None:
        self.answer = answer
        self.sent = b""

    def send(self, data: bytes) -> None:
        self.sent += data

    def recv(self, timeout: float) -> bytes:
        if not self.answer:
            raise TimeoutError
        return self.answer.pop(0)

    def close(self) -> None:
        pass


class FakeConnector:
    def __init__(self, servers: dict[str, object]) -> None:
        self.servers = servers
        self.tried: list[tuple[str, int]] = []

    def connect(
        self, ip: str, port: int, *, timeout: float, local_ip: str | None = None
    ) -> FakeConnection:
        self.tried.append((ip, port))
        found = self.servers.get(ip, ConnectionRefusedError())
        if isinstance(found, BaseException):
            raise found
        assert isinstance(found, FakeConnection)
        return found


@pytest.mark.parametrize(
    ("servers", "code"),
    [
        ({"10.0.0.2": FakeConnection([b"23:", b"Kok 1 qp 2,"])}, codes.OK),
        ({"10.0.0.2": FakeConnection([b"4:Zno,"])}, codes.TEMP_REJECTED),
        ({"10.0.0.2": FakeConnection([b"4:Dno,"])}, codes.PERM_REJECTED),
        ({"10.0.0.2": FakeConnection([b"12:", b""])}, codes.COMM_FAILED),
        ({"10.0.0.2": FakeConnection([])}, codes.COMM_FAILED),
        ({"10.0.0.1": TimeoutError()}, codes.CONN_REJECTED),
        ({"10.0.0.2": TimeoutError()}, codes.TIMED_OUT),
        ({}, codes.CONN_REJECTED),
    ],
)
def test_qmqpc_tries_servers_in_turn(servers: dict[str, object], code: int) -> None:
    connector = FakeConnector(servers)
    assert qmqpc.send(["10.0.0.1", "not an ip", "10.0.0.2"], b"req", connector) == code
    assert connector.tried[0] == ("10.0.0.1", qmqpc.PORT_QMQP)


def test_qmqpc_without_servers_is_55() -> None:
    assert qmqpc.send(["mx.example"], b"req", FakeConnector({})) == codes.NO_CONFIG


@given(st.lists(st.binary(max_size=30), max_size=4), st.binary(max_size=5))
def test_server_netstrings_split_what_was_joined(parts: list[bytes], tail: bytes) -> None:
    joined = b"".join(ns(p) for p in parts)
    assert server_netstrings(joined) == [ns(p).decode("latin-1") for p in parts]
    pieces = server_netstrings(joined + b"9:" + tail)
    assert pieces[-1].endswith(INCOMPLETE)
