"""serve's qmail-smtpd writes a reply (server.smtpd.live._write) as safewrite() does:
a write that has not gone out within timeoutsmtpd ends the session.

A reply held up to the transport's high-water mark leaves nothing to wait for, so no timer
is set for it; one held back beyond it is waited for, with the timeout.
"""

from __future__ import annotations

import asyncio

import pytest

from server.smtpd import live


class FakeTransport:
    def __init__(self, held: int) -> None:
        self.held = held

    def get_write_buffer_size(self) -> int:
        return self.held

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (LOW, 4 * LOW)  # asyncio's defaults: 16 KiB and 64 KiB


LOW = 16384
HIGH = 4 * LOW


class FakeWriter:
    """A StreamWriter's surface for _write: ``held`` bytes stay in its buffer."""

    def __init__(self, held: int, drain: str = "ok") -> None:
        self.transport = FakeTransport(held)
        self.written: list[bytes] = []
        self.drains = 0
        self.drain_mode = drain

    def write(self, data: bytes) -> None:
        self.written.append(data)

    async def drain(self) -> None:
        self.drains += 1
        if self.drain_mode == "stuck":
            raise TimeoutError  # what asyncio.timeout raises when the time is up
        if self.drain_mode == "gone":
            raise ConnectionResetError


def run_write(writer: FakeWriter) -> bool:
    return asyncio.run(live._write(writer, b"250 ok\r\n", 1200))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "held", [0, 8, LOW + 1, HIGH], ids=["taken-whole", "held-by-the-loop", "past-low", "high-water"]
)
def test_a_reply_up_to_the_high_water_mark_is_not_waited_for(held: int) -> None:
    writer = FakeWriter(held=held)
    assert run_write(writer) is True
    assert writer.written == [b"250 ok\r\n"] and writer.drains == 0


def test_a_reply_held_back_is_drained() -> None:
    writer = FakeWriter(held=HIGH + 1)
    assert run_write(writer) is True
    assert writer.drains == 1


def test_a_reply_that_does_not_go_out_in_time_ends_the_session() -> None:
    assert run_write(FakeWriter(held=HIGH + 1, drain="stuck")) is False


def test_a_connection_gone_while_draining_is_an_error_for_handle() -> None:
    with pytest.raises(ConnectionResetError):  # handle() turns it into exit 1
        run_write(FakeWriter(held=HIGH + 1, drain="gone"))
