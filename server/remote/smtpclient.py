"""qmail-remote's SMTP dialogue as a core without I/O (h11's shape, STYLE.md).

The driver feeds the server's bytes in (:meth:`SmtpClient.receive_data`),
tells it when the connection died (:meth:`SmtpClient.connection_lost`) and
asks :meth:`SmtpClient.next_event` what to do: :class:`Send` bytes (then
report :meth:`SmtpClient.sent` or :meth:`SmtpClient.send_failed`), wait for
data (:data:`NEED_DATA`), or stop (:class:`Finished` with every byte
qmail-remote prints: the ``r``/``h``/``s`` recipient reports and the final
``K``/``Z``/``D`` report, each ending in NUL).

What qmail-remote.c's ``smtp()`` does, which this follows:

* replies are read by ``smtpcode()``: the code is the first three bytes of
  the first line, whatever they are (``ch - '0'`` in an unsigned long, so
  garbage gives a large code); a ``-`` after them means another line follows,
  whose first three bytes are skipped; CRs are dropped from the text kept for
  the report, which stops growing at 5000 bytes (HUGESMTPTEXT);
* the greeting must be exactly 220 and the HELO reply exactly 250; MAIL,
  RCPT, DATA and the end of data fail at >= 500 (permanent) or >= 400
  (temporary), anything lower counts as success;
* each failure sends ``QUIT`` without waiting for its reply; if even that
  write fails, the result is the "connection died" report instead;
* the body goes out line by line: a leading ``.`` doubled, LF turned into
  CRLF, everything else (bare CR, 8-bit bytes) untouched, through a
  1024-byte output buffer; a last line without LF is
  ``SMTP cannot transfer messages with partial final lines``; from the final
  ``.`` on, a dropped connection is a "Possible duplicate!".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from server.remote import replies as R

HUGESMTPTEXT = 5000  # qmail-remote.c
OUTBUF = 1024  # qmail-remote.c: char smtptobuf[1024]
_ULONG = 1 << 64


@dataclass(frozen=True)
class Reply:
    code: int
    text: bytes  # CRs removed, LFs kept, cut at HUGESMTPTEXT


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Finished:
    output: bytes  # everything qmail-remote writes to stdout


Event = Send | Finished | _NeedData


# smtpcode() as a table: state -> (byte -> next state). A state "done" ends a reply.
def _code(n: int) -> Callable[[int], str]:
    return lambda b: f"code{n + 1}" if n < 2 else "fourth"


def _cont(n: int) -> Callable[[int], str]:
    return lambda b: f"cont{n + 1}" if n < 2 else "fourth"


_READER: dict[str, Callable[[int], str]] = {
    "code0": _code(0),
    "code1": _code(1),
    "code2": _code(2),
    "fourth": lambda b: "skipline" if b == 0x2D else ("done" if b == 0x0A else "final"),
    "skipline": lambda b: "cont0" if b == 0x0A else "skipline",
    "cont0": _cont(0),
    "cont1": _cont(1),
    "cont2": _cont(2),
    "final": lambda b: "done" if b == 0x0A else "final",
}


@dataclass
class ReplyReader:
    """smtpcode(), fed any number of bytes at a time."""

    _buf: bytearray = field(default_factory=bytearray)
    _state: str = "code0"
    _code: int = 0
    _text: bytearray = field(default_factory=bytearray)

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None when more bytes are needed."""
        for consumed, b in enumerate(self._buf, start=1):
            if b != 0x0D and len(self._text) < HUGESMTPTEXT:
                self._text.append(b)
            if self._state.startswith("code"):
                self._code = (self._code * 10 + (b - 0x30)) % _ULONG
            self._state = _READER[self._state](b)
            if self._state == "done":
                del self._buf[:consumed]
                reply = Reply(self._code, bytes(self._text))
                self._state, self._code, self._text = "code0", 0, bytearray()
                return reply
        self._buf.clear()
        return None


def blast(message: bytes) -> tuple[list[tuple[bytes, bool]], bool]:
    """The writes blast() makes: [(bytes, critical)], and whether the last line was partial.

    Reproduces substdio's buffer: a one-byte put into a full buffer flushes it;
    a longer put that does not fit flushes what is there first.
    """
    writes: list[tuple[bytes, bool]] = []
    buf = bytearray()

    def flush(critical: bool) -> None:
        if buf:
            writes.append((bytes(buf), critical))
            buf.clear()

    def put_bytes(data: bytes) -> None:  # substdio_put one byte at a time
        while data:
            if len(buf) == OUTBUF:
                flush(False)
            take = OUTBUF - len(buf)
            buf.extend(data[:take])
            data = data[take:]

    def put(data: bytes, critical: bool) -> None:  # one substdio_put of several bytes
        if len(data) > OUTBUF - len(buf):
            flush(critical)
        buf.extend(data)

    lines = message.split(b"\n")
    last = lines.pop()  # b"" when the message ends with LF
    for line in lines:
        put_bytes(b"." + line if line.startswith(b".") else line)
        put(b"\r\n", False)
    if last:
        put_bytes(b"." + last if last.startswith(b".") else last)
        return writes, True  # perm_partialline: what is still buffered is never sent
    put(b".\r\n", True)
    flush(True)
    return writes, False


# What each stage does with a reply: (test, failure report for >= 500, for >= 400).
_EXACT = {"greeting": (220, R.GREETING_FAILED), "helo": (250, R.HELO_REJECTED)}
_GRADED = {
    "mail": (R.SENDER_REJECTED_PERM, R.SENDER_REJECTED_TEMP),
    "data": (R.DATA_PERM, R.DATA_TEMP),
    "body": (R.AFTER_DATA_PERM, R.AFTER_DATA_TEMP),
}
#: The legal order of the dialogue: stage -> stage after a good reply.
TRANSITIONS: dict[str, str] = {
    "greeting": "helo",
    "helo": "mail",
    "mail": "rcpt",
    "rcpt": "data",
    "data": "body",
    "body": "accepted",
}


class SmtpClient:
    """One SMTP transaction for qmail-remote, after the connection is up."""

    def __init__(
        self,
        *,
        partner: str,
        helohost: bytes,
        sender: bytes,
        recipients: Sequence[bytes],
        message: Callable[[], bytes],
    ) -> None:
        self.partner = partner
        self._helohost = helohost
        self._sender = sender
        self._recipients = list(recipients)
        self._message = message
        self._reader = ReplyReader()
        self._stage = "greeting"
        self._rcpt_index = 0
        self._any_rcpt_ok = False
        self._critical = False
        self._output = bytearray()
        self._sends: list[tuple[bytes, bool]] = []
        self._after_sends: bytes | None = None  # final report once the sends went out
        self._finished: bytes | None = None

    # -- driver interface ---------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        self._reader.receive_data(data)

    def connection_lost(self) -> None:
        """End of stream, a read error or the read timeout: dropped()."""
        if self._finished is None:
            self._finished = R.dropped(self.partner, self._critical)

    def send_failed(self) -> None:
        self._sends.clear()
        self._after_sends = None
        self.connection_lost()

    def sent(self) -> None:
        self._sends.pop(0)

    def next_event(self) -> Event:
        while True:
            if self._finished is not None:
                return Finished(bytes(self._output) + self._finished + b"\0")
            if self._sends:
                data, critical = self._sends[0]
                self._critical = self._critical or critical
                return Send(data)
            if self._after_sends is not None:
                self._finished, self._after_sends = self._after_sends, None
                continue
            reply = self._reader.next_reply()
            if reply is None:
                return NEED_DATA
            self._on_reply(reply)

    # -- the dialogue -------------------------------------------------------
    def _send(self, data: bytes, critical: bool = False) -> None:
        self._sends.append((data, critical))

    def _quit(self, pair: tuple[str, str], text: bytes) -> None:
        self._send(b"QUIT\r\n")
        self._after_sends = R.quit_text(pair, self.partner, text)

    def _on_reply(self, reply: Reply) -> None:
        stage = self._stage
        if stage in _EXACT:
            want, failure = _EXACT[stage]
            if reply.code != want:
                self._quit(failure, reply.text)
                return
        elif stage == "rcpt":
            self._on_rcpt(reply)
            return
        else:
            perm, temp = _GRADED[stage]
            if stage == "body":
                self._critical = False
            if reply.code >= 500:
                self._quit(perm, reply.text)
                return
            if reply.code >= 400:
                self._quit(temp, reply.text)
                return
        if TRANSITIONS[stage] == "accepted":
            self._quit(R.ACCEPTED, reply.text)  # "K<ip> accepted message.\nRemote host said: ..."
            return
        self._advance(TRANSITIONS[stage])

    def _advance(self, stage: str) -> None:
        self._stage = stage
        if stage == "helo":
            self._send(b"HELO " + self._helohost + b"\r\n")
        elif stage == "mail":
            self._send(b"MAIL FROM:<" + self._sender + b">\r\n")
        elif stage == "rcpt":
            self._send_rcpt()
        elif stage == "data":
            self._send(b"DATA\r\n")
        elif stage == "body":
            self._send_body()

    def _send_rcpt(self) -> None:
        if self._rcpt_index < len(self._recipients):
            self._send(b"RCPT TO:<" + self._recipients[self._rcpt_index] + b">\r\n")
            return
        if not self._any_rcpt_ok:
            self._quit(R.NO_RECIPIENTS, b"")
            return
        self._advance("data")

    def _on_rcpt(self, reply: Reply) -> None:
        if reply.code >= 500:
            self._output += R.rcpt_report(R.RCPT_PERM, self.partner, reply.text) + b"\0"
        elif reply.code >= 400:
            self._output += R.rcpt_report(R.RCPT_TEMP, self.partner, reply.text) + b"\0"
        else:
            self._output += R.RCPT_OK.encode() + b"\0"
            self._any_rcpt_ok = True
        self._rcpt_index += 1
        self._send_rcpt()

    def _send_body(self) -> None:
        try:
            message = self._message()
        except OSError:
            self._finished = R.READ.encode()
            return
        writes, partial = blast(message)
        self._sends.extend(writes)
        if partial:
            self._after_sends = R.PARTIALLINE.encode()
