"""What qmail-qmtpd and qmail-qmqpd share: a sans-I/O core over netstrings.

Both read their input one byte at a time through a 512-byte substdio
(``ssinbuf``) and write replies through a 256-byte one (``ssoutbuf``); the
C code is a straight-line program, so the core is one too: a generator
(:meth:`NetstringCore._session`) that yields an event whenever it needs the
outside world and is resumed with the answer.

The driver (:mod:`server.qmqp.program`) loops on :meth:`NetstringCore.next_event`:

- :class:`NeedData`: write :meth:`data_to_send` (qmail-qmtpd's saferead
  flushes before every read), read at most :data:`READ_SIZE` bytes and
  :meth:`receive_data` them (``b""`` at the end of the input);
- :class:`OpenQueue` / :class:`QueueData` / :class:`CloseQueue` /
  :class:`AbandonQueue`: qmail.c's qmail_open, qmail_put, qmail_from+to+close,
  and the queue run left without an envelope (qmail_fail, or an exit);
- :class:`Exit`: write :meth:`data_to_send` and exit with the code. What was
  still in the output buffer at an ``_exit`` is lost, as in C, so
  :meth:`data_to_send` holds only what was flushed.

Lengths are read as getlen() reads them: any byte before ``:`` counts as a
digit (``10 * len + (ch - '0')`` with a signed char, in an unsigned long),
and a length past 200000000 before another byte is "resources" (exit 111).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import ClassVar

from server.qmqp.config import QmtpdConfig
from server.smtpd.received import received

#: qmail-qmtpd.c's and qmail-qmqpd.c's ssinbuf.
READ_SIZE = 512
#: Their ssoutbuf.
OUT_SIZE = 256
#: getlen(): "if (len > 200000000) resources();" before each further byte.
LEN_LIMIT = 200_000_000
_ULONG = 2**64

EXIT_BADPROTO = 100  # badproto()
EXIT_RESOURCES = 111  # resources()


@dataclass(frozen=True, kw_only=True)
class NeedData:
    """Flush, then read more input."""


@dataclass(frozen=True, kw_only=True)
class OpenQueue:
    """qmail_open(): answer with the run's qp (:meth:`NetstringCore.queue_opened`)."""


@dataclass(frozen=True, kw_only=True)
class QueueData:
    data: bytes


@dataclass(frozen=True, kw_only=True)
class CloseQueue:
    """The envelope; answer with qmail_close()'s text (:meth:`NetstringCore.queue_result`)."""

    sender: bytes
    recipients: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True)
class AbandonQueue:
    """qmail_fail() then qmail_close(): the queue run ends and nothing is queued."""


@dataclass(frozen=True, kw_only=True)
class Exit:
    code: int


Event = NeedData | OpenQueue | QueueData | CloseQueue | AbandonQueue | Exit
Session = Generator[Event, object, None]


class Stop(Exception):
    """An ``_exit`` deep in the session: the code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def c_digit(ch: int) -> int:
    """``ch - '0'`` with ``ch`` a signed char."""
    return (ch - 256 if ch >= 128 else ch) - 0x30


def next_len(length: int, ch: int) -> int:
    """One step of getlen(): the check, then ``10 * len + (ch - '0')`` as an unsigned long."""
    if length > LEN_LIMIT:
        raise Stop(EXIT_RESOURCES)
    return (10 * length + c_digit(ch)) % _ULONG


def netstring(text: bytes) -> bytes:
    return str(len(text)).encode() + b":" + text + b","


class NetstringCore:
    """Input and output buffers and the event loop; subclasses write :meth:`_session`."""

    #: whether the program reads control files (qmail-qmtpd) or only the environment
    reads_controls: ClassVar[bool] = False

    def __init__(
        self, config: QmtpdConfig, *, now: Callable[[], float], date: Callable[[int], bytes]
    ) -> None:
        self.config = config
        self.now = now
        self.date = date
        self._in = b""
        self._pos = 0
        self._eof = False
        self._out = bytearray()  # ssout's buffer, not yet written
        self._sent = bytearray()  # flushed, for the driver to write
        self._answer: object = None
        self._queue_open = False
        self._gen: Session | None = None
        self.exit_code: int | None = None

    # -- the driver's side ----------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """More input; ``b""`` is the end of it."""
        if data:
            self._in, self._pos = self._in[self._pos :] + data, 0
        else:
            self._eof = True

    def queue_opened(self, qp: int) -> None:
        self._answer = qp

    def queue_result(self, error: bytes) -> None:
        self._answer = error

    def data_to_send(self) -> bytes:
        out = bytes(self._sent)
        self._sent.clear()
        return out

    def next_event(self) -> Event:
        if self.exit_code is not None:
            return Exit(code=self.exit_code)
        if self._gen is None:
            self._gen = self._session()
            send: object = None
        else:
            send, self._answer = self._answer, None
        try:
            event = self._gen.send(send)
        except Stop as stop:
            return self._exit(stop.code)
        except StopIteration:
            return self._exit(0)
        if isinstance(event, OpenQueue):
            self._queue_open = True
        elif isinstance(event, CloseQueue | AbandonQueue):
            self._queue_open = False
        return event

    def _exit(self, code: int) -> Event:
        self.exit_code = code
        if self._queue_open:  # the queue run sees its input end, without an envelope
            self._queue_open = False
            return AbandonQueue()
        return Exit(code=code)

    # -- the session's side ---------------------------------------------------
    def _session(self) -> Session:
        raise NotImplementedError

    def _getbyte(self) -> Generator[Event, object, int]:
        """One byte of the input: each program reads its own way (limit, flush)."""
        raise NotImplementedError

    def _getlen(self) -> Generator[Event, object, int]:
        """getlen(): a netstring's length, up to and taking its ``:``."""
        length = 0
        while (ch := (yield from self._getbyte())) != 0x3A:
            length = next_len(length, ch)
        return length

    def _getcomma(self) -> Session:
        """getcomma(): a netstring's closing ``,``, else badproto()."""
        if (yield from self._getbyte()) != 0x2C:
            raise Stop(EXIT_BADPROTO)

    def _getbytes(self, length: int) -> Generator[Event, object, bytearray]:
        """``length`` bytes one :meth:`_getbyte` at a time."""
        data = bytearray()
        for _ in range(length):
            data.append((yield from self._getbyte()))
        return data

    def _fill(self, flush: bool) -> Session:
        """substdio_feed: wait for input; the end of it is saferead's ``_exit(0)``."""
        while self._pos >= len(self._in):
            if flush:
                self._flush()
            if self._eof:
                raise Stop(0)
            yield NeedData()

    def _byte(self, flush: bool) -> Generator[Event, object, int]:
        yield from self._fill(flush)
        ch = self._in[self._pos]
        self._pos += 1
        return ch

    def _take(self, most: int, flush: bool) -> Generator[Event, object, bytes]:
        """Up to ``most`` bytes, at least one: what the buffer holds."""
        yield from self._fill(flush)
        chunk = self._in[self._pos : self._pos + most]
        self._pos += len(chunk)
        return chunk

    def _put(self, data: bytes) -> None:
        """substdio_put: a piece that does not fit flushes what is buffered first."""
        if len(data) > OUT_SIZE - len(self._out):
            self._flush()
            if len(data) > OUT_SIZE:
                self._sent += data
                return
        self._out += data

    def _flush(self) -> None:
        self._sent += self._out
        self._out.clear()

    def _open(self) -> Generator[Event, object, int]:
        qp = yield OpenQueue()
        assert isinstance(qp, int)
        return qp

    def _close(self, sender: bytes, recipients: list[bytes]) -> Generator[Event, object, bytes]:
        result = yield CloseQueue(sender=sender, recipients=tuple(recipients))
        assert isinstance(result, bytes)
        return result

    def _received(self, protocol: bytes) -> bytes:
        """received.c's line, without a HELO part (both pass a null helo)."""
        c = self.config
        return received(
            protocol=protocol,
            local=c.local,
            remoteip=c.remoteip,
            remotehost=c.remotehost,
            remoteinfo=c.remoteinfo,
            helo=None,
            date=self.date(int(self.now())),
        )

    def _ok(self, qp: int) -> bytes:
        return b"Kok %d qp %d" % (int(self.now()), qp)
