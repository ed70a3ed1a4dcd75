"""The envelope, three ways: as a client sends it, as qmail-queue reads it, as the queue keeps it.

On qmail-queue's descriptor 1 (qmail-queue(8)) the envelope is ``F`` sender
NUL, then ``T`` recipient NUL for each recipient, then one extra NUL.
:class:`EnvelopeReader` is a sans-I/O reader of that stream with
qmail-queue.c's rules: the first byte must be ``F`` and each further record
must start with ``T`` (else exit 91), an address of :data:`ADDR` bytes or
more without its NUL is "too long" (exit 11), and end of input before the
final NUL is a read error (exit 54). It stops at the final NUL and leaves
whatever follows unread, as qmail-queue does.

In ``intd/`` and ``todo/`` the envelope is written as ``u<uid>`` NUL
``p<pid>`` NUL, followed by what qmail-queue read, minus the final NUL
(qmail-queue.c echoes each byte it reads). :func:`parse_todo` reads such a
file the way qmail-send.c's todo_do() does.

Addresses are ``str`` in our APIs and bytes on disk; the mapping is UTF-8
with ``surrogateescape`` so that any byte string (qmail's addresses are just
bytes) survives the round trip and ASCII is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from server.queue import codes
from server.scan import scan_ulong

#: qmail-queue.c ``#define ADDR 1003``: an address (with its NUL) must fit in
#: 1003 bytes, i.e. at most 1002 bytes of address.
ADDR: Final = 1003


def addr_bytes(address: str) -> bytes:
    return address.encode("utf-8", "surrogateescape")


def addr_str(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _c_string(address: str) -> bytes:
    # qmail_puts() writes a C string: an address ends at its first NUL.
    return addr_bytes(address).split(b"\0", 1)[0]


def encode_envelope(sender: str, recipients: Sequence[str]) -> bytes:
    """What qmail.c's qmail_from/qmail_to/qmail_close write on the envelope pipe."""
    parts = [b"F" + _c_string(sender) + b"\0"]
    parts.extend(b"T" + _c_string(r) + b"\0" for r in recipients)
    parts.append(b"\0")
    return b"".join(parts)


class EnvelopeError(Exception):
    """The envelope cannot be queued; ``code`` is qmail-queue's exit code."""

    def __init__(self, code: int, echo: bytes) -> None:
        super().__init__(f"envelope rejected with exit code {code} after {len(echo)} bytes")
        self.code = code
        #: The bytes read and echoed before the failure (qmail-queue does not
        #: echo a byte that is not ``F``/``T``).
        self.echo = echo


@dataclass(frozen=True, kw_only=True)
class Envelope:
    sender: bytes
    recipients: tuple[bytes, ...]
    #: What qmail-queue writes after ``u``/``p``: the stream minus its final NUL.
    echo: bytes


@dataclass
class EnvelopeReader:
    """Feed bytes; :meth:`result` gives the envelope once the final NUL arrived.

    Raises :class:`EnvelopeError` (91 or 11) as soon as the input shows it;
    call :meth:`eof` at end of input (54 unless complete).
    """

    _buf: bytearray = field(default_factory=bytearray)
    _pos: int = 0
    _sender: bytes | None = None
    _recipients: list[bytes] = field(default_factory=list)
    _done: bool = False
    #: Bytes fed after the final NUL; qmail-queue never reads them.
    trailing: bytes = b""

    def feed(self, data: bytes) -> bool:
        """Take more input; True once the envelope is complete."""
        if self._done:
            self.trailing += data
            return True
        self._buf += data
        while not self._done and self._step():
            pass
        return self._done

    def _step(self) -> bool:
        """Consume one record if it is all there; False when more input is needed."""
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            return False
        tag = buf[pos]
        expected = ord("F") if self._sender is None else ord("T")
        if self._sender is not None and tag == 0:
            self._done = True
            self.trailing = bytes(buf[pos + 1 :])
            self._pos = pos + 1
            return False
        if tag != expected:
            raise EnvelopeError(codes.ENVELOPE_FORMAT, bytes(buf[:pos]))
        end = buf.find(b"\0", pos + 1, pos + 1 + ADDR)
        if end == -1:
            if len(buf) - (pos + 1) >= ADDR:
                raise EnvelopeError(codes.ADDRESS_TOO_LONG, bytes(buf[: pos + 1 + ADDR]))
            return False
        address = bytes(buf[pos + 1 : end])
        if self._sender is None:
            self._sender = address
        else:
            self._recipients.append(address)
        self._pos = end + 1
        return True

    def eof(self) -> Envelope:
        """End of input: the envelope, or :class:`EnvelopeError` 54."""
        if not self._done:
            raise EnvelopeError(codes.READ_ERROR, bytes(self._buf))
        return self.result()

    def result(self) -> Envelope:
        if not self._done or self._sender is None:
            raise EnvelopeError(codes.READ_ERROR, bytes(self._buf))
        return Envelope(
            sender=self._sender,
            recipients=tuple(self._recipients),
            echo=bytes(self._buf[: self._pos - 1]),
        )

    @property
    def done(self) -> bool:
        return self._done


def parse_envelope(data: bytes) -> Envelope:
    """The envelope at the start of ``data`` (whole input at once)."""
    reader = EnvelopeReader()
    reader.feed(data)
    return reader.eof()


def intd_header(uid: int, pid: int) -> bytes:
    """qmail-queue.c writes ``u<uid>\\0p<pid>\\0`` before the echoed envelope."""
    return b"u%d\0p%d\0" % (uid, pid)


class TodoFormatError(Exception):
    """qmail-send's "warning: unknown record type in todo/N"."""

    def __init__(self, record: bytes) -> None:
        super().__init__(f"unknown record type {record[:1]!r}")
        self.record = record


@dataclass(frozen=True, kw_only=True)
class TodoFile:
    """An ``intd/``/``todo/`` file as qmail-send reads it."""

    uid: int
    pid: int
    sender: str
    recipients: tuple[str, ...]


def parse_todo(data: bytes) -> TodoFile:
    """Records split at NUL, as todo_do(): ``u``, ``p``, ``F``, ``T``.

    A last record without its NUL is ignored (getln reports no match); any
    other first byte, an empty record included, is :class:`TodoFormatError`.
    """
    uid = pid = 0
    sender = ""
    recipients: list[str] = []
    records = data.split(b"\0")[:-1]
    for record in records:
        kind = record[:1]
        if kind == b"u":
            uid = scan_ulong(record[1:])[0]
        elif kind == b"p":
            pid = scan_ulong(record[1:])[0]
        elif kind == b"F":
            sender = addr_str(record[1:])
        elif kind == b"T":
            recipients.append(addr_str(record[1:]))
        else:
            raise TodoFormatError(record)
    return TodoFile(uid=uid, pid=pid, sender=sender, recipients=tuple(recipients))
