"""The core's streamed message (``stream=n``): pieces as it arrives, as qmail_put feeds qmail-queue.

However the input is cut and whatever the piece size, the pieces and the
QueueMessage's rest join to the message a core holding it whole queues, the
replies are the same bytes, and a message given out in pieces either ends
in a QueueMessage or in MessageAbandoned, before the reply that refuses it.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.smtpd import replies
from server.smtpd.core import (
    NEED_DATA,
    Closed,
    MessageAbandoned,
    MessageData,
    QueueMessage,
    SmtpCore,
)

from .helpers import DATE, NOW, config, replies_of

START = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"


@dataclasses.dataclass
class Run:
    output: bytes
    queued: list[tuple[bytes, bytes, tuple[bytes, ...]]]  # message, sender, recipients
    abandoned: int
    exit_code: int


def drive(
    chunks: list[bytes], *, stream: int = 0, open_at_data: bool = False, **changes: object
) -> Run:
    """Feed ``chunks`` then end of input; join each message's pieces."""
    core = SmtpCore(
        config(**changes),
        now=lambda: NOW,
        date=lambda t: DATE,
        stream=stream,
        open_at_data=open_at_data,
    )
    todo = [*chunks, b""]
    out = bytearray(core.data_to_send())
    queued: list[tuple[bytes, bytes, tuple[bytes, ...]]] = []
    pieces = bytearray()
    started = False
    abandoned = 0
    while True:
        event = core.next_event()
        if isinstance(event, MessageData):
            # with open_at_data the first piece is whatever has come (the Received line)
            assert stream and (len(event.data) >= stream or (open_at_data and not started))
            pieces += event.data
            started = True
        elif isinstance(event, MessageAbandoned):
            assert started, "abandoned a message never given out"
            pieces.clear()
            started = False
            abandoned += 1
        elif isinstance(event, QueueMessage):
            queued.append((bytes(pieces) + event.message, event.sender, event.recipients))
            pieces.clear()
            started = False
            core.queue_result("", 4242)
        elif isinstance(event, Closed):
            assert not started, "a message given out in pieces was left open"
            out += core.data_to_send()
            return Run(bytes(out), queued, abandoned, event.exit_code)
        else:
            assert event is NEED_DATA
            core.receive_data(todo.pop(0))
        out += core.data_to_send()


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [p for p in (data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])) if p]


_bits = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"\r",
        b".",
        b"..",
        b"x",
        b"Received: a\r\n",
        b"DELIVERED-to: b\r\n",
        b"\r\n.\r\n",
        b"DATA\r\n",
        b"RCPT TO:<c@example.org>\r\n",
        b"line of text\r\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.one_of(_bits, st.binary(max_size=6)), max_size=40),
    cuts=st.lists(st.integers(0, 600), max_size=10),
    stream=st.integers(1, 80),
    databytes=st.sampled_from([0, 40, 400]),
)
def test_pieces_join_to_the_message_held_whole(
    parts: list[bytes], cuts: list[int], stream: int, databytes: int
) -> None:
    data = START + b"".join(parts)
    whole = drive([data], databytes=databytes)
    for open_at_data in (False, True):
        streamed = drive(
            _cut(data, cuts), stream=stream, databytes=databytes, open_at_data=open_at_data
        )
        assert streamed.output == whole.output
        assert streamed.queued == whole.queued
        assert streamed.exit_code == whole.exit_code


def test_open_at_data_gives_the_received_line_out_with_the_354() -> None:
    core = SmtpCore(
        config(), now=lambda: NOW, date=lambda t: DATE, stream=1 << 20, open_at_data=True
    )
    seen = timeline(core, [START, b"Subject: small\r\n\r\nhi\r\n.\r\nQUIT\r\n"])
    kinds = [kind for kind, _ in seen]
    # qmail_open() before the 354: the run starts before any of the body is read
    first = kinds.index("data")
    assert kinds[first : first + 3] == ["data", "out", "queued"]
    assert seen[first][1].startswith(b"Received: from unknown (HELO c) (127.0.0.1)\n  by ")
    assert seen[first][1].endswith(b"\n") and b"Subject" not in seen[first][1]
    assert seen[first + 1][1].endswith(b"354 go ahead\r\n")
    assert seen[first + 2][1] == b"Subject: small\n\nhi\n"


def test_open_at_data_abandons_a_refused_message_before_the_reply() -> None:
    core = SmtpCore(
        config(databytes=10),
        now=lambda: NOW,
        date=lambda t: DATE,
        stream=1 << 20,
        open_at_data=True,
    )
    seen = timeline(core, [START, b"Subject: far too big\r\n\r\n.\r\nQUIT\r\n"])
    kinds = [kind for kind, _ in seen]
    assert "queued" not in kinds
    end = kinds.index("abandoned")
    assert seen[end + 1] == ("out", replies.DATABYTES)


def test_a_message_smaller_than_a_piece_comes_whole() -> None:
    core = SmtpCore(config(), now=lambda: NOW, date=lambda t: DATE, stream=1 << 20)
    core.receive_data(START + b"Subject: small\r\n\r\nhi\r\n.\r\n")
    events = [core.next_event()]
    assert isinstance(events[0], QueueMessage)
    assert events[0].message.startswith(b"Received: from unknown (HELO c) (127.0.0.1)\n  by ")
    assert events[0].message.endswith(b"\nSubject: small\n\nhi\n")


def timeline(core: SmtpCore, chunks: list[bytes]) -> list[tuple[str, bytes]]:
    """What a driver meets, in order: ("data", piece), ("abandoned", b""),
    ("queued", rest), ("out", replies to send), ("closed", b"")."""
    todo = [*chunks, b""]
    seen: list[tuple[str, bytes]] = []
    while True:
        event = core.next_event()
        if isinstance(event, MessageData):
            seen.append(("data", event.data))
        elif isinstance(event, MessageAbandoned):
            seen.append(("abandoned", b""))
        elif isinstance(event, QueueMessage):
            seen.append(("queued", event.message))
            core.queue_result("", 4242)
        out = core.data_to_send()
        if out:
            seen.append(("out", out))
        if isinstance(event, Closed):
            seen.append(("closed", b""))
            return seen
        if event is NEED_DATA:
            core.receive_data(todo.pop(0))


def _lines(n: int) -> list[bytes]:
    return [b"y" * 78 + b"\r\n"] * n


def test_over_databytes_is_abandoned_before_the_552() -> None:
    core = SmtpCore(config(databytes=1000), now=lambda: NOW, date=lambda t: DATE, stream=100)
    seen = timeline(core, [START, *_lines(40), b".\r\nQUIT\r\n"])
    kinds = [kind for kind, _ in seen]
    pieces = [data for kind, data in seen if kind == "data"]
    assert pieces  # given out as it came, up to databytes and no further
    assert sum(map(len, pieces)) <= 1000 + 200
    assert "queued" not in kinds
    # qmail_close() comes before the reply, as in qmail-smtpd's smtp_data()
    end = kinds.index("abandoned")
    assert seen[end + 1] == ("out", replies.DATABYTES)


def test_too_many_hops_is_abandoned_before_the_554() -> None:
    core = SmtpCore(config(), now=lambda: NOW, date=lambda t: DATE, stream=64)
    header = [b"Received: from somewhere\r\n"] * 100
    seen = timeline(core, [START, *header, b"\r\nbody\r\n.\r\nQUIT\r\n"])
    kinds = [kind for kind, _ in seen]
    assert "data" in kinds and "queued" not in kinds
    end = kinds.index("abandoned")
    assert seen[end + 1] == ("out", replies.TOO_MANY_HOPS)


def test_queued_in_pieces_with_the_received_line_first() -> None:
    core = SmtpCore(config(), now=lambda: NOW, date=lambda t: DATE, stream=100)
    seen = timeline(core, [START, *_lines(10), b".\r\nQUIT\r\n"])
    message = b"".join(data for kind, data in seen if kind in ("data", "queued"))
    assert [k for k, _ in seen].count("data") > 1
    assert seen[[k for k, _ in seen].index("data")][1].startswith(b"Received: from unknown")
    assert message.endswith(b"\n" + b"y" * 78 + b"\n")
    assert message.count(b"y" * 78 + b"\n") == 10


@pytest.mark.parametrize(
    ("end", "reply"),
    [(b"bare\nLF", replies.STRAY_NEWLINE), (b"", b"")],
    ids=["stray-newline", "end-of-input"],
)
def test_the_connection_ending_mid_message_abandons_it(end: bytes, reply: bytes) -> None:
    run = drive([START, b"z" * 500 + b"\r\n", end], stream=64)
    assert run.abandoned == 1 and run.queued == [] and run.exit_code == 1
    assert run.output.endswith(b"354 go ahead\r\n" + reply)


def test_a_timeout_mid_message_abandons_it() -> None:
    core = SmtpCore(config(), now=lambda: NOW, date=lambda t: DATE, stream=200)
    core.receive_data(START)
    assert core.next_event() is NEED_DATA
    core.receive_data(b"z" * 500)
    assert isinstance(core.next_event(), MessageData)
    assert core.next_event() is NEED_DATA
    core.data_to_send()
    core.timeout()
    assert isinstance(core.next_event(), MessageAbandoned)
    assert replies_of(core.data_to_send()) == [replies.TIMEOUT.rstrip()]
    assert isinstance(core.next_event(), Closed)


def test_a_streamed_message_has_no_cap_but_databytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.smtpd import body

    monkeypatch.setattr(body, "MAX_MESSAGE", 10)  # held whole, this is "disk full"
    data = START + b"0123456789abc\r\n.\r\nQUIT\r\n"
    assert b"451 qq write error" in drive([data]).output
    run = drive([data], stream=5)
    assert run.queued[0][0].endswith(b"\n0123456789abc\n")
    assert replies_of(run.output)[-2].startswith(b"250 ok ")
