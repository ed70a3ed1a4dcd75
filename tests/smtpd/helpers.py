"""Small builders for the qmail-smtpd tests: a config, a core, a scripted session."""

from __future__ import annotations

import dataclasses
from typing import Any

from server.smtpd.core import NEED_DATA, Closed, QueueMessage, SmtpCore
from server.smtpd.policy import Rcpthosts, SmtpdConfig

NOW = 1_700_000_000
DATE = b"14 Nov 2023 22:13:20 -0000"


def config(**changes: Any) -> SmtpdConfig:
    base = SmtpdConfig(
        greeting=b"mx.example.org",
        liphost=b"mx.example.org",
        timeout=1200,
        rcpthosts=Rcpthosts(hosts=frozenset({b"example.org", b".sub.example.org"})),
        badmailfrom=None,
        databytes=0,
        remoteip=b"127.0.0.1",
        local=b"mx.example.org",
        remotehost=b"unknown",
        is_me=lambda ip: ip in {(0, 0, 0, 0), (127, 0, 0, 1)},
    )
    return dataclasses.replace(base, **changes)


def core(**changes: Any) -> SmtpCore:
    return SmtpCore(config(**changes), now=lambda: NOW, date=lambda t: DATE)


@dataclasses.dataclass
class Outcome:
    output: bytes
    queued: list[QueueMessage]
    exit_code: int | None


def session(
    data: bytes | list[bytes],
    *,
    result: tuple[str, int] = ("", 4242),
    eof: bool = True,
    **changes: Any,
) -> Outcome:
    """Feed ``data`` (one chunk or several) and run to the end; queue with ``result``."""
    c = core(**changes)
    chunks = [data] if isinstance(data, bytes) else list(data)
    if eof:
        chunks.append(b"")
    out = bytearray(c.data_to_send())
    queued: list[QueueMessage] = []
    while True:
        event = c.next_event()
        out += c.data_to_send()
        if isinstance(event, Closed):
            return Outcome(bytes(out), queued, event.exit_code)
        if isinstance(event, QueueMessage):
            queued.append(event)
            c.queue_result(*result)
            continue
        assert event is NEED_DATA
        if not chunks:
            return Outcome(bytes(out), queued, None)
        c.receive_data(chunks.pop(0))


def replies_of(output: bytes) -> list[bytes]:
    return output.split(b"\r\n")[:-1]
