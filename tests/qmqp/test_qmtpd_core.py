"""qmail-qmtpd's core (server.qmqp.qmtpd) against qmail-qmtpd.c's rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.qmqp import replies
from server.qmqp.framing import READ_SIZE
from server.qmqp.qmtpd import QmtpCore
from tests.qmqp.helpers import Played, addresses, bodies, chunked, config, ns, play, qmtp

NOW = 1_700_000_000


def run(data: bytes, size: int = READ_SIZE, **kwargs: object) -> Played:
    core = QmtpCore(config(**kwargs), now=lambda: NOW, date=lambda t: b"14 Nov 2023 22:13:20 -0000")
    return play(core, chunked(data, size))


def ok(qp: int) -> bytes:
    return ns(b"Kok %d qp %d" % (NOW, qp))


RECEIVED = (
    b"Received: from unknown (127.0.0.1)\n  by 127.0.0.1 with QMTP; 14 Nov 2023 22:13:20 -0000\n"
)
IDENT = {"remoteip": b"127.0.0.1", "local": b"127.0.0.1"}


@pytest.mark.parametrize("size", [1, 7, READ_SIZE])
def test_a_message_is_queued_with_the_received_line(size: int) -> None:
    played = run(qmtp(b"Subject: x\n\nhi\n", b"a@b", [b"bob@example.org"]), size, **IDENT)
    assert played.output == ok(1001)
    assert played.code == 0
    [queued] = played.queued
    assert queued.message == RECEIVED + b"Subject: x\n\nhi\n"
    assert (queued.sender, queued.recipients) == (b"a@b", (b"bob@example.org",))


@pytest.mark.parametrize("size", [1, 2, 3, READ_SIZE])
def test_crlf_becomes_lf_a_lone_cr_stays(size: int) -> None:
    played = run(qmtp(b"a\r\nb\rc\r\r\nd\r", b"", [b"bob"], flag=b"\r"), size)
    assert played.queued[0].message.endswith(b"a\nb\rc\r\nd\r")


def test_each_recipient_gets_its_answer_in_order() -> None:
    rcpts = [b"eve@far.example", b"bob@example.org", b"b\0b", b"x" * 1000]
    played = run(qmtp(b"\n", b"a@b", rcpts))
    assert played.output == (
        replies.RCPTHOSTS + ok(1001) + replies.BAD_RECIPIENT + replies.BAD_RECIPIENT
    )
    assert played.queued[0].recipients == (b"bob@example.org",)


def test_relayclient_is_appended_and_counts_toward_1000() -> None:
    rcpts = [b"bob", b"eve@far.example", b"x" * 990]
    played = run(qmtp(b"\n", b"a@b", rcpts), relayclient=b"@example.org")
    assert played.output == ok(1001) * 2 + replies.BAD_RECIPIENT
    assert played.queued[0].recipients == (b"bob@example.org", b"eve@far.example@example.org")


def test_databytes_counts_after_crlf_and_refuses_with_its_answer() -> None:
    body = b"12345\r\n"  # six bytes once CRLF is LF
    assert run(qmtp(body, b"a@b", [b"bob"], flag=b"\r"), databytes=6).output == ok(1001)
    played = run(qmtp(body, b"a@b", [b"bob", b"eve@far.example"], flag=b"\r"), databytes=5)
    assert played.output == ns(replies.DATABYTES) + replies.RCPTHOSTS
    assert played.queued == [] and played.abandoned == 1


def test_an_unacceptable_sender() -> None:
    played = run(qmtp(b"\n", b"a" * 1000, [b"bob"]))
    assert played.output == ns(replies.UNACCEPTABLE_SENDER)
    assert played.queued == []


def test_no_recipients_no_answer() -> None:
    played = run(qmtp(b"\nx", b"a@b", []) + qmtp(b"\ny", b"a@b", [b"bob"]))
    assert played.output == ok(1002)
    assert len(played.queued) == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"0:", 100),
        (b"3:xab,", 100),
        (ns(b"\nx")[:-1] + b";", 100),
        (ns(b"\nx") + ns(b"a") + b"5:5:", 100),
        (b"9999999999:", 111),
        (ns(b"\nx") + ns(b"a") + b"30:4000000000:", 111),
        (b"", 0),
        (b"12:\nab", 0),
    ],
)
def test_exits(data: bytes, code: int) -> None:
    played = run(data)
    assert played.code == code
    assert played.queued == []


def test_answers_wait_for_the_next_read() -> None:
    """A badproto in the same read as a finished message: the answer is lost."""
    message = qmtp(b"\nx", b"a@b", [b"bob"])
    together = run(message + b"0:")
    assert (together.code, together.output, len(together.queued)) == (100, b"", 1)
    apart = play(QmtpCore(config(), now=lambda: NOW, date=lambda t: b"d"), [message, b"0:"])
    assert (apart.code, apart.output) == (100, ok(1001))


def test_a_queue_failure_is_the_answer() -> None:
    core = QmtpCore(config(), now=lambda: NOW, date=lambda t: b"d")
    played = play(core, [qmtp(b"\nx", b"a@b", [b"bob"])], result=b"Zqq temporary problem (#4.3.0)")
    assert played.output == ns(b"Zqq temporary problem (#4.3.0)")


sessions = st.lists(
    st.tuples(bodies, addresses, st.lists(addresses, max_size=3), st.sampled_from([b"\n", b"\r"])),
    max_size=3,
).map(lambda ms: b"".join(qmtp(b, s, r, f) for b, s, r, f in ms))


@given(sessions, st.integers(min_value=1, max_value=READ_SIZE))
def test_well_formed_sessions_queue_the_same_however_read(data: bytes, size: int) -> None:
    whole, pieces = run(data), run(data, size)
    assert whole.code == pieces.code == 0
    assert whole.output == pieces.output
    assert whole.queued == pieces.queued


@given(st.one_of(st.binary(max_size=200), sessions.map(lambda d: d[: len(d) // 2] + b"x")))
def test_any_input_ends_in_an_exit(data: bytes) -> None:
    for size in (1, READ_SIZE):
        assert run(data, size).code in (0, 100, 111)
