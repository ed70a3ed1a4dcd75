"""qmail-qmtpd's session (qmail-qmtpd.c, netqmail-1.06) as a sans-I/O core.

Each message is three netstrings: the message (its first byte ``\\n``, or
``\\r`` for CRLF lines that are turned into LF), the sender, and a netstring
of recipient netstrings. The answer is one netstring per recipient, in
order: ``Kok <time> qp <qp>`` (or qmail_close()'s ``Z``/``D`` text, or
"unacceptable sender", or the databytes text) for an accepted recipient,
the rcpthosts text for a refused one (unless ``RELAYCLIENT`` is set, whose
value is appended to each recipient instead), "can't handle that recipient"
for one with a NUL or 1000 bytes or more with RELAYCLIENT. Replies wait in
the output buffer until the next read. A message with no recipients gets
no reply at all. A framing error is ``_exit(100)`` (badproto), a length past
200000000 is ``_exit(111)``, and the end of the input ``_exit(0)``.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import BinaryIO

from server.errors import TempFail
from server.programs import ProgramContext
from server.qmqp import replies
from server.qmqp.framing import (
    EXIT_BADPROTO,
    EXIT_RESOURCES,
    AbandonQueue,
    Event,
    NetstringCore,
    QueueData,
    Session,
    Stop,
    netstring,
    next_len,
)

#: buf[1000] in qmail-qmtpd.c: a sender, or a recipient with RELAYCLIENT,
#: of 1000 bytes or more is refused.
ADDR_LIMIT = 1000


class QmtpCore(NetstringCore):
    reads_controls = True

    def _getbyte(self) -> Generator[Event, object, int]:
        return (yield from self._byte(True))

    def _session(self) -> Session:
        while True:
            yield from self._message()

    def _message(self) -> Session:
        config = self.config
        length = yield from self._getlen()
        if length == 0:
            raise Stop(EXIT_BADPROTO)
        qp = yield from self._open()
        flag = yield from self._getbyte()
        length -= 1
        if flag not in (0x0A, 0x0D):
            raise Stop(EXIT_BADPROTO)
        yield QueueData(data=self._received(b"QMTP"))
        size = yield from self._body(length, dos=flag == 0x0D)
        overflow = bool(config.databytes) and size > config.databytes
        yield from self._getcomma()
        sender, sender_ok = yield from self._sender()
        recipients, failures = yield from self._recipients()
        yield from self._getcomma()
        if overflow or not sender_ok or not recipients:
            yield AbandonQueue()
            result = b""
        else:
            result = yield from self._close(sender, recipients)
        if not sender_ok:
            result = replies.UNACCEPTABLE_SENDER
        if overflow:
            result = replies.DATABYTES
        reply = netstring(result or self._ok(qp))
        for failure in failures:
            self._put({b"": reply, b"D": replies.RCPTHOSTS}.get(failure, replies.BAD_RECIPIENT))

    def _body(self, length: int, *, dos: bool) -> Generator[Event, object, int]:
        """The message after its first byte, to the queue (CRLF to LF when ``dos``);
        the number of bytes it came to. Past databytes nothing more is passed on."""
        limit = self.config.databytes
        size = 0
        carry = b""
        while length > 0:
            chunk = yield from self._take(length, True)
            length -= len(chunk)
            if dos:
                chunk = carry + chunk
                carry = b"\r" if length and chunk.endswith(b"\r") else b""
                chunk = chunk[: len(chunk) - len(carry)].replace(b"\r\n", b"\n")
            size += len(chunk)
            if not limit or size <= limit:
                yield QueueData(data=chunk)
        return size

    def _sender(self) -> Generator[Event, object, tuple[bytes, bool]]:
        length = yield from self._getlen()
        data = yield from self._getbytes(length)
        yield from self._getcomma()
        if length >= ADDR_LIMIT:
            return b"", False
        return bytes(data), 0 not in data

    def _recipients(self) -> Generator[Event, object, tuple[list[bytes], list[bytes]]]:
        """The accepted recipients, and a failure letter for each ("" when accepted)."""
        config = self.config
        extra = config.relayclient or b""
        accepted: list[bytes] = []
        failures: list[bytes] = []
        biglen = yield from self._getlen()
        while biglen > 0:
            length = 0
            while True:
                if not biglen:
                    raise Stop(EXIT_BADPROTO)
                ch = yield from self._getbyte()
                biglen -= 1
                if ch == 0x3A:
                    break
                length = next_len(length, ch)
            if length >= biglen:
                raise Stop(EXIT_BADPROTO)
            addr = yield from self._getbytes(length)
            failure = self._judge(bytes(addr), extra)
            failures.append(failure)
            if not failure:
                accepted.append(bytes(addr) + extra)
            yield from self._getcomma()
            biglen -= length + 1
        return accepted, failures

    def _judge(self, addr: bytes, extra: bytes) -> bytes:
        if len(addr) + len(extra) >= ADDR_LIMIT:
            return b"L"
        failure = b"N" if 0 in addr else b""
        if self.config.relayclient is None and self.config.rcpthosts is not None:
            try:
                allowed = self.config.rcpthosts.allowed(addr)
            except TempFail as exc:  # morercpthosts.cdb unreadable: resources()
                raise Stop(EXIT_RESOURCES) from exc
            if not allowed:
                failure = b"D"
        return failure


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    from server.qmqp.program import serve

    return serve(QmtpCore, env, stdin, stdout, ctx)
