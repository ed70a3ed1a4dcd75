"""Building QMTP and QMQP requests for the tests, and driving the cores in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from server.qmqp.config import QmtpdConfig
from server.qmqp.framing import (
    AbandonQueue,
    CloseQueue,
    Exit,
    NetstringCore,
    OpenQueue,
    QueueData,
)


def ns(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


def qmtp(body: bytes, sender: bytes, rcpts: Sequence[bytes], flag: bytes = b"\n") -> bytes:
    return ns(flag + body) + ns(sender) + ns(b"".join(ns(r) for r in rcpts))


def qmqp(body: bytes, sender: bytes, rcpts: Sequence[bytes]) -> bytes:
    return ns(ns(body) + ns(sender) + b"".join(ns(r) for r in rcpts))


@dataclass
class Queued:
    message: bytes
    sender: bytes
    recipients: tuple[bytes, ...]


@dataclass
class Played:
    code: int
    output: bytes
    queued: list[Queued] = field(default_factory=list)
    abandoned: int = 0


def play(core: NetstringCore, chunks: Sequence[bytes], result: bytes = b"") -> Played:
    """Feed ``chunks`` one read at a time, then the end; queue runs answer ``result``."""
    pending = list(chunks)
    out = bytearray()
    played = Played(code=-1, output=b"")
    qp = 1000
    message = bytearray()
    while True:
        event = core.next_event()
        out += core.data_to_send()
        if isinstance(event, Exit):
            played.code, played.output = event.code, bytes(out)
            return played
        if isinstance(event, OpenQueue):
            qp += 1
            message.clear()
            core.queue_opened(qp)
        elif isinstance(event, QueueData):
            message += event.data
        elif isinstance(event, CloseQueue):
            played.queued.append(Queued(bytes(message), event.sender, event.recipients))
            core.queue_result(result)
        elif isinstance(event, AbandonQueue):
            played.abandoned += 1
        else:
            core.receive_data(pending.pop(0) if pending else b"")


def config(**kwargs: object) -> QmtpdConfig:
    from server.smtpd.policy import Rcpthosts

    values: dict[str, object] = {"rcpthosts": Rcpthosts(hosts=frozenset({b"example.org"}))}
    values.update(kwargs)
    return QmtpdConfig(**values)  # type: ignore[arg-type]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


ADDRESSES = [b"bob@example.org", b"eve@far.example", b"bob", b"", b"a\0b@example.org", b"x" * 1000]
addresses = st.one_of(st.sampled_from(ADDRESSES), st.binary(max_size=12))
bodies = st.one_of(
    st.sampled_from([b"Subject: x\n\nhi\n", b"Subject: y\r\n\r\nhi\r\nthere\r\r\n", b""]),
    st.binary(max_size=40),
)
