"""qmail-qmqpd's session (qmail-qmqpd.c, netqmail-1.06) as a sans-I/O core.

One message a connection: a netstring holding the message netstring, the
sender netstring and a recipient netstring for each recipient. The outer
length bounds everything read after it (getbyte(): past it is
``_exit(100)``; before it is known, its own digits may take 100 bytes). The
queue run starts once the two first lengths are read, with qmail-qmqpd's
``Received: ... with QMQP`` line. The answer is one netstring, ``Kok <time>
qp <qp>`` or qmail_close()'s text, or "can't accept addresses like that"
when the sender or a recipient had a NUL or 1000 bytes or more; then
``_exit(0)``. The end of the input anywhere is ``_exit(0)`` with no answer.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import BinaryIO

from server.programs import ProgramContext
from server.qmqp import replies
from server.qmqp.framing import (
    EXIT_BADPROTO,
    AbandonQueue,
    Event,
    NetstringCore,
    QueueData,
    Session,
    Stop,
    netstring,
)

#: "unsigned long bytesleft = 100;": what the outer length's own digits may take.
FIRST_LIMIT = 100
#: char buf[1000]
ADDR_LIMIT = 1000


class QmqpCore(NetstringCore):
    left = FIRST_LIMIT

    def _getbyte(self) -> Generator[Event, object, int]:
        if not self.left:
            raise Stop(EXIT_BADPROTO)
        self.left -= 1
        return (yield from self._byte(False))

    def _getbuf(self) -> Generator[Event, object, bytes | None]:
        """An address, or None for one qmail-qmqpd refuses."""
        length = yield from self._getlen()
        data = yield from self._getbytes(length)
        yield from self._getcomma()
        if length >= ADDR_LIMIT or 0 in data:
            return None
        return bytes(data)

    def _session(self) -> Session:
        self.left = yield from self._getlen()
        length = yield from self._getlen()
        qp = yield from self._open()
        yield QueueData(data=self._received(b"QMQP"))
        while length > 0:
            if not self.left:
                raise Stop(EXIT_BADPROTO)
            chunk = yield from self._take(min(length, self.left), False)
            self.left -= len(chunk)
            length -= len(chunk)
            yield QueueData(data=chunk)
        yield from self._getcomma()
        sender = yield from self._getbuf()
        ok = sender is not None
        recipients: list[bytes] = []
        while self.left:
            addr = yield from self._getbuf()
            if addr is None:
                ok = False
            else:
                recipients.append(addr)
        self.left = 1
        yield from self._getcomma()
        if ok and sender is not None:
            result = yield from self._close(sender, recipients)
        else:
            yield AbandonQueue()
            result = replies.BAD_ADDRESS
        self._put(netstring(result or self._ok(qp)))
        self._flush()


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    from server.qmqp.program import serve

    return serve(QmqpCore, env, stdin, stdout, ctx)
