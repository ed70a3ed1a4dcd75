"""qmail-smtpd's SMTP conversation as a sans-I/O state machine (h11 style).

Bytes go in with :meth:`SmtpCore.receive_data` (``b""`` for end of input);
:meth:`SmtpCore.next_event` works through them and answers :data:`NEED_DATA`,
a :class:`QueueMessage` (the driver runs qmail-queue and hands the result to
:meth:`SmtpCore.queue_result`) or :class:`Closed`; the replies written so far
come out of :meth:`SmtpCore.data_to_send`. A driver sends them before every
read, as substdio flushes qmail-smtpd's output before each read (saferead),
so pipelined commands are answered in order.

Commands follow commands.c: a line ends at LF, one CR before it is dropped,
the line is cut at a NUL byte (C strings), the verb ends at the first space
and is matched ignoring case; the argument starts after the spaces. The body
follows blast(): CR LF becomes LF, a leading dot is dropped, ``.`` CR LF ends
it, a bare LF anywhere is answered "451 See .../smtplf.html." and the
connection ends at once. Header lines starting with ``Received`` or
``Delivered`` (any case) count as hops until the first empty line.

qmail-smtpd passes the message on to qmail-queue's pipe as it reads it. A
core made with ``stream=n`` lets its driver do the same: while the message
arrives, :meth:`SmtpCore.next_event` gives it out as :class:`MessageData`
pieces of at least ``n`` bytes (our Received line first), the
:class:`QueueMessage` at its end carries only the rest, and a message given
out in pieces that will not be queued (too big, too many hops, the client
gone) ends with :class:`MessageAbandoned`, before the reply that says so.
A message shorter than ``n`` comes whole in its QueueMessage, as with the
default ``stream=0``.

Every legal move is in :data:`TRANSITIONS`; the handlers only say which
outcome happened.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from server.errors import TempFail
from server.smtpd import replies
from server.smtpd.address import addrparse
from server.smtpd.body import Blast
from server.smtpd.policy import MAXHOPS, SmtpdConfig, bmf_listed, relay_hack
from server.smtpd.received import received


class State(enum.Enum):
    IDLE = "idle"  # no MAIL yet (seenmail = 0)
    MAIL = "mail"  # MAIL given, no recipient accepted yet
    RCPT = "rcpt"  # at least one recipient accepted
    DATA = "data"  # reading the message after 354
    QUEUE = "queue"  # waiting for qmail-queue's result
    CLOSED = "closed"


_ANY_COMMAND = {
    "helo": State.IDLE,  # HELO/EHLO and RSET forget the transaction
    "rset": State.IDLE,
    "quit": State.CLOSED,
    "eof": State.CLOSED,
    "timeout": State.CLOSED,
    "nomem": State.CLOSED,
    "control": State.CLOSED,  # die_control(): morercpthosts.cdb unreadable mid-session
}

#: {state: {outcome: next state}}: every move qmail-smtpd can make. "same"
#: outcomes (NOOP, a refused RCPT...) keep the state; they are listed so that
#: the table alone says what is legal where.
TRANSITIONS: dict[State, dict[str, State]] = {
    State.IDLE: {
        **_ANY_COMMAND,
        "other": State.IDLE,
        "mail": State.MAIL,
        "mail_syntax": State.IDLE,
        "no_mail": State.IDLE,
    },
    State.MAIL: {
        **_ANY_COMMAND,
        "other": State.MAIL,
        "mail": State.MAIL,
        "mail_syntax": State.MAIL,
        "rcpt": State.RCPT,
        "rcpt_refused": State.MAIL,
        "no_rcpt": State.MAIL,
    },
    State.RCPT: {
        **_ANY_COMMAND,
        "other": State.RCPT,
        "mail": State.MAIL,
        "mail_syntax": State.RCPT,
        "rcpt": State.RCPT,
        "rcpt_refused": State.RCPT,
        "data": State.DATA,
    },
    State.DATA: {
        "end": State.QUEUE,
        "refused": State.IDLE,  # too many hops, or over databytes
        "stray_newline": State.CLOSED,
        "eof": State.CLOSED,
        "timeout": State.CLOSED,
    },
    State.QUEUE: {"queued": State.IDLE},
    State.CLOSED: {},
}

#: qmail grows its command buffer until malloc fails (then "421 out of
#: memory"); we stop a command line at this length with the same reply.
MAX_COMMAND = 1 << 20
_OUT_OF_ROOM = "Zqq write error or disk full (#4.3.0)"


class SmtpProtocolError(Exception):
    """The driver used the core wrongly (e.g. fed data after it closed)."""


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True, kw_only=True)
class QueueMessage:
    """Run qmail-queue with this message and envelope, then call queue_result()."""

    message: bytes  # our Received line, then the body with LF line ends
    sender: bytes
    recipients: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True)
class Closed:
    """The program's end: 0 after QUIT, 1 otherwise (every _exit(1) in qmail-smtpd.c)."""

    exit_code: int


@dataclass(frozen=True, kw_only=True)
class MessageData:
    """With ``stream``: the next piece of the message for qmail-queue (qmail_put)."""

    data: bytes


@dataclass(frozen=True, kw_only=True)
class MessageAbandoned:
    """With ``stream``: the pieces given out will not be queued; end that qmail-queue run."""


Event = _NeedData | QueueMessage | MessageData | MessageAbandoned | Closed


@dataclass
class _Envelope:
    """One transaction: what MAIL and RCPT collected (mailfrom, rcptto, flagbarf)."""

    sender: bytes = b""
    recipients: list[bytes] = field(default_factory=list)
    barf: bool = False


class SmtpCore:
    """One SMTP connection of qmail-smtpd, without I/O.

    ``now`` gives whole seconds (for the Received line and "250 ok <time>");
    ``date`` formats such a time as date822fmt does, without its newline;
    ``stream`` (bytes, 0 for never) is the size of the MessageData pieces;
    with ``open_at_data`` as well, the first piece (our Received line) comes
    right after the 354, so that the driver starts qmail-queue while the
    client sends the body, as qmail-smtpd's qmail_open() runs before its 354.
    """

    def __init__(
        self,
        config: SmtpdConfig,
        *,
        now: Callable[[], int],
        date: Callable[[int], bytes],
        stream: int = 0,
        open_at_data: bool = False,
    ) -> None:
        self.config = config
        self._stream = stream
        self._open_at_data = open_at_data
        self._streamed = False  # this message has been given out in pieces
        self._abandoned = False  # ... and will not be queued: say so next
        self._now = now
        self._date = date
        self.state = State.IDLE
        self.exit_code = 1
        self._in = bytearray()
        self._eof = False
        self._out = bytearray(replies.greeting(config.greeting))
        self._helo: bytes = config.remotehost
        self._envelope = _Envelope()
        self._body: Blast | None = None
        self._received = b""
        self._pending: QueueMessage | None = None
        self._verbs: dict[bytes, Callable[[bytes], None]] = {
            b"rcpt": self._rcpt,
            b"mail": self._mail,
            b"data": self._data,
            b"quit": self._quit,
            b"helo": self._helo_cmd,
            b"ehlo": self._ehlo_cmd,
            b"rset": self._rset,
            b"help": lambda arg: self._reply(replies.HELP, "other"),
            b"noop": lambda arg: self._reply(replies.NOOP, "other"),
            b"vrfy": lambda arg: self._reply(replies.VRFY, "other"),
        }

    # -- the driver's side -------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """More input; ``b""`` means the client closed its side."""
        if self._eof:
            raise SmtpProtocolError("data after end of input")
        if data:
            self._in += data
        else:
            self._eof = True

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event:
        while True:
            if self._abandoned:
                self._abandoned = False
                return MessageAbandoned()
            if self.state is State.CLOSED:
                return Closed(exit_code=self.exit_code)
            if self.state is State.QUEUE:
                if self._pending is None:
                    raise SmtpProtocolError("queue_result() is due before more events")
                pending, self._pending = self._pending, None
                return pending
            if self.state is State.DATA:
                progressed = self._data_step()
                piece = self._piece()
                if piece is not None:
                    return piece
            else:
                progressed = self._command_step()
            if not progressed:
                if not self._eof:
                    return NEED_DATA
                self._move("eof")  # die_read(): exit 1, nothing more written

    def queue_result(self, error: str, qp: int) -> None:
        """qmail_close()'s text ("" when queued) and qmail-queue's pid."""
        if self.state is not State.QUEUE or self._pending is not None:
            raise SmtpProtocolError("no message is waiting for qmail-queue")
        if error:
            self._reply(replies.queue_failure(error), "queued")
        else:
            self._reply(replies.accepted(self._now(), qp), "queued")

    def timeout(self) -> None:
        """No input within timeoutsmtpd seconds: die_alarm()."""
        if self.state in (State.CLOSED, State.QUEUE):
            raise SmtpProtocolError(f"no read is waiting in state {self.state.value}")
        self._reply(replies.TIMEOUT, "timeout")

    # -- moves ---------------------------------------------------------------

    def _move(self, outcome: str) -> None:
        before = self.state
        try:
            self.state = TRANSITIONS[self.state][outcome]
        except KeyError:
            raise SmtpProtocolError(f"{outcome!r} is not a move from {self.state.value}") from None
        if before is State.DATA:
            self._abandoned = self._streamed and self.state is not State.QUEUE
            self._streamed = False
        if self.state is State.IDLE or outcome == "mail":
            self._body = None

    def _reply(self, text: bytes, outcome: str) -> None:
        self._out += text
        self._move(outcome)

    def _command_step(self) -> bool:
        end = self._in.find(b"\n")
        if end < 0:
            if len(self._in) > MAX_COMMAND:
                self._reply(replies.NOMEM, "nomem")
                return True
            return False
        line = bytes(self._in[:end])
        del self._in[: end + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        line = line.split(b"\0", 1)[0]  # a C string ends at NUL
        verb, _, arg = line.partition(b" ")
        handler = self._verbs.get(verb.lower())
        if handler is None:
            self._reply(replies.UNIMPLEMENTED, "other")
        else:
            handler(arg.lstrip(b" "))
        return True

    # -- commands (smtp_* in qmail-smtpd.c) ---------------------------------

    def _greeting_reply(self, build: Callable[[bytes], bytes], arg: bytes) -> None:
        self._out += build(self.config.greeting)
        self._helo = arg
        self._move("helo")

    def _helo_cmd(self, arg: bytes) -> None:
        self._greeting_reply(replies.helo, arg)

    def _ehlo_cmd(self, arg: bytes) -> None:
        self._greeting_reply(replies.ehlo, arg)

    def _quit(self, arg: bytes) -> None:
        self.exit_code = 0
        self._reply(replies.quit_(self.config.greeting), "quit")

    def _rset(self, arg: bytes) -> None:
        self._reply(replies.RSET, "rset")

    def _parse(self, arg: bytes) -> bytes | None:
        return addrparse(arg, liphost=self.config.liphost, is_me=self.config.is_me)

    def _mail(self, arg: bytes) -> None:
        addr = self._parse(arg)
        if addr is None:
            self._reply(replies.SYNTAX, "mail_syntax")
            return
        barf = bmf_listed(self.config.badmailfrom, addr)
        self._envelope = _Envelope(sender=addr, barf=barf)
        self._reply(replies.MAIL_OK, "mail")

    def _rcpt_refusal(self, addr: bytes | None) -> bytes | None:
        """The checks of smtp_rcpt in order; None when the recipient is taken."""
        config = self.config
        if addr is None:
            return replies.SYNTAX
        if config.relay_reject and relay_hack(addr):
            return replies.RELAY_REJECT  # relay-reject.patch: before badmailfrom
        if self._envelope.barf:
            return replies.BADMAILFROM
        if config.relayclient is None and not config.rcpthosts.allowed(addr):
            return replies.NOGATEWAY
        return None

    def _rcpt(self, arg: bytes) -> None:
        if self.state is State.IDLE:
            self._reply(replies.WANT_MAIL, "no_mail")
            return
        addr = self._parse(arg)
        try:
            refusal = self._rcpt_refusal(addr)
        except TempFail:
            self._reply(replies.CONTROL, "control")
            return
        if refusal is not None or addr is None:
            self._reply(refusal or replies.SYNTAX, "rcpt_refused")
            return
        if self.config.relayclient is not None:
            addr += self.config.relayclient
        self._envelope.recipients.append(addr)
        self._reply(replies.RCPT_OK, "rcpt")

    def _data(self, arg: bytes) -> None:
        if self.state is State.IDLE:
            self._reply(replies.WANT_MAIL, "no_mail")
            return
        if self.state is State.MAIL:
            self._reply(replies.WANT_RCPT, "no_rcpt")
            return
        config = self.config
        self._body = Blast(config.databytes, held=not self._stream)
        helo = self._helo if self._helo.lower() != config.remotehost.lower() else None
        self._received = received(
            protocol=b"SMTP",
            local=config.local,
            remoteip=config.remoteip,
            remotehost=config.remotehost,
            remoteinfo=config.remoteinfo,
            helo=helo,
            date=self._date(self._now()),
        )
        self._reply(replies.GO_AHEAD, "data")

    # -- the message ---------------------------------------------------------

    def _data_step(self) -> bool:
        body = self._body
        assert body is not None
        if not self._in:
            return False
        used, verdict = body.feed(self._in, 0)
        del self._in[:used]
        if verdict == "stray_newline":
            self._reply(replies.STRAY_NEWLINE, "stray_newline")
        elif verdict == "end":
            self._end_of_data(body)
        return True

    def _piece(self) -> MessageData | None:
        """With ``stream``: the message so far once it is ``stream`` bytes or more."""
        body = self._body
        if self.state is not State.DATA or body is None or not self._stream:
            return None
        first = self._open_at_data and not self._streamed
        if len(self._received) + len(body.out) < self._stream and not first:
            return None
        self._streamed = True
        data, self._received = self._received + body.take(), b""
        return MessageData(data=data)

    def _end_of_data(self, body: Blast) -> None:
        if body.hops >= MAXHOPS:
            self._reply(replies.TOO_MANY_HOPS, "refused")
        elif body.too_big:
            self._reply(replies.DATABYTES, "refused")
        elif body.out_of_room:
            self._reply(replies.queue_failure(_OUT_OF_ROOM), "refused")
        else:
            envelope = self._envelope
            self._pending = QueueMessage(
                message=self._received + body.take(),
                sender=envelope.sender,
                recipients=tuple(envelope.recipients),
            )
            self._move("end")
