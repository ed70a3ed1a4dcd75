"""POP3 as qmail-popup and qmail-pop3d speak it, without any I/O.

Two sessions share one transition table, :data:`TABLE`:

* :class:`Popup` is qmail-popup: the banner, then USER/PASS/APOP/QUIT/NOOP in
  the AUTHORIZATION state. A PASS or APOP hands the user, the password and
  the banner's timestamp to checkpassword (the :class:`Authenticate` event)
  and the session is over for qmail-popup: it only waits for the child.
* :class:`Pop3d` is qmail-pop3d, started by checkpassword in the
  TRANSACTION state over a list of messages the driver scanned.

Bytes come in through :class:`LineReader` (commands.c's reading rules) as
:class:`Command` events; a session answers with :class:`Reply`,
:class:`Authenticate`, :class:`Fetch` (the driver reads the file and calls
:func:`blast`) or :class:`Commit` (QUIT: the driver unlinks and renames).
A handler that fails (a syntax error, a bad message number) replies and
leaves the state unchanged; only success follows the table's arrow.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from server.pop3 import replies

#: commands.c grows its line buffer without bound and, when memory runs out,
#: the program exits without a reply. A line longer than this (far more than
#: any client sends) is treated the same way: :class:`LineTooLong`.
MAX_LINE: Final = 1 << 20
#: scan_ulong() accumulates in a C unsigned long, wrapping on overflow.
ULONG_MASK: Final = (1 << 64) - 1


class State(enum.Enum):
    AUTHORIZATION = "authorization"  # qmail-popup reading USER/PASS
    CHECKING = "checking"  # qmail-popup waiting for checkpassword
    TRANSACTION = "transaction"  # qmail-pop3d
    CLOSED = "closed"  # after QUIT


#: Matches any verb a state's row does not list (commands.c's ``{ 0, ... }``).
OTHER: Final = b""

#: state -> lower-case verb -> (handler, state after success). The rows are
#: the command tables of qmail-popup.c and qmail-pop3d.c, in their order.
TABLE: Final[dict[State, dict[bytes, tuple[str, State]]]] = {
    State.AUTHORIZATION: {
        b"user": ("user", State.AUTHORIZATION),
        b"pass": ("pass_", State.CHECKING),
        b"apop": ("apop", State.CHECKING),
        b"quit": ("quit", State.CLOSED),
        b"noop": ("okay", State.AUTHORIZATION),
        OTHER: ("authorization_first", State.AUTHORIZATION),
    },
    State.CHECKING: {},
    State.TRANSACTION: {
        b"quit": ("quit", State.CLOSED),
        b"stat": ("stat", State.TRANSACTION),
        b"list": ("list_", State.TRANSACTION),
        b"uidl": ("uidl", State.TRANSACTION),
        b"dele": ("dele", State.TRANSACTION),
        b"retr": ("top", State.TRANSACTION),  # RETR is TOP without a count
        b"rset": ("rset", State.TRANSACTION),
        b"last": ("last", State.TRANSACTION),
        b"top": ("top", State.TRANSACTION),
        b"noop": ("okay", State.TRANSACTION),
        OTHER: ("unimplemented", State.TRANSACTION),
    },
    State.CLOSED: {},
}


class ProtocolError(Exception):
    """Input the session cannot take (commands after the end, a runaway line)."""


class LineTooLong(ProtocolError):
    def __init__(self, length: int) -> None:
        super().__init__(f"command line longer than {MAX_LINE} bytes ({length} so far)")
        self.length = length


@dataclass(frozen=True, kw_only=True)
class Command:
    """One command line: ``verb`` as sent, ``arg`` after the spaces that follow it."""

    verb: bytes
    arg: bytes

    def __post_init__(self) -> None:
        if b" " in self.verb or b"\n" in self.verb or b"\0" in self.verb:
            raise ValueError(f"bad verb {self.verb!r}")

    @classmethod
    def parse(cls, line: bytes) -> Command:
        """commands.c: drop one CR before the LF, stop at a NUL, split at a space."""
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        line = line.split(b"\0", 1)[0]  # the C string ends at the first NUL
        verb, _, arg = line.partition(b" ")
        return cls(verb=verb, arg=arg.lstrip(b" "))


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


class LineReader:
    """Bytes in, :class:`Command` out, split at LF as commands.c does."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_event(self) -> Command | _NeedData:
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > MAX_LINE:
                raise LineTooLong(len(self._buf))
            return NEED_DATA
        if end > MAX_LINE:
            raise LineTooLong(end)
        line = bytes(self._buf[: end + 1])
        del self._buf[: end + 1]
        return Command.parse(line)

    @property
    def trailing(self) -> bytes:
        """Bytes after the last complete line (dropped at end of input, as qmail does)."""
        return bytes(self._buf)


@dataclass(frozen=True, kw_only=True)
class Reply:
    data: bytes


@dataclass(frozen=True, kw_only=True)
class Authenticate:
    """Run checkpassword: fd 3 gets ``user\\0password\\0timestamp\\0``."""

    user: bytes
    password: bytes
    timestamp: bytes

    def fd3(self) -> bytes:
        return self.user + b"\0" + self.password + b"\0" + self.timestamp + b"\0"


@dataclass(frozen=True, kw_only=True)
class Fetch:
    """Send message ``path`` through :func:`blast` with ``limit`` (0: all of it)."""

    path: str
    limit: int


@dataclass(frozen=True, kw_only=True)
class Commit:
    """QUIT in qmail-pop3d: unlink these, rename these (new/X to cur/X:2,)."""

    unlink: tuple[str, ...]
    rename: tuple[tuple[str, str], ...]


Event = Reply | Authenticate | Fetch | Commit


def scan_ulong(data: bytes) -> tuple[int, int]:
    """scan_ulong(): (number of digits read, value wrapped to 64 bits)."""
    digits = len(data) - len(data.lstrip(b"0123456789"))
    value = int(data[:digits]) & ULONG_MASK if digits else 0
    return digits, value


class _Session:
    state: State

    def handle(self, command: Command) -> list[Event]:
        """Answer one command, following :data:`TABLE` for the current state."""
        row = TABLE[self.state]
        if not row:
            raise ProtocolError(f"no commands are read in state {self.state.value}")
        name, after = row.get(command.verb.lower(), row[OTHER])
        handler: Callable[[bytes], tuple[list[Event], bool]] = getattr(self, "_" + name)
        events, ok = handler(command.arg)
        if ok:
            self.state = after
        return events

    def _okay(self, arg: bytes) -> tuple[list[Event], bool]:
        return [Reply(data=replies.OK)], True


class Popup(_Session):
    """qmail-popup's side: greet, read a user and a password, hand them on."""

    def __init__(self, *, hostname: bytes, pid: int, now: int) -> None:
        self.state = State.AUTHORIZATION
        # pop3_greet(): "<" pid "." time "@" hostname ">"
        self.timestamp = b"<%d.%d@" % (pid, now) + hostname + b">"
        self.username: bytes | None = None

    def greeting(self) -> Reply:
        return Reply(data=replies.greeting(self.timestamp))

    def _authorization_first(self, arg: bytes) -> tuple[list[Event], bool]:
        return [Reply(data=replies.AUTHORIZATION_FIRST)], False

    def _quit(self, arg: bytes) -> tuple[list[Event], bool]:
        return [Reply(data=replies.OK)], True

    def _user(self, arg: bytes) -> tuple[list[Event], bool]:
        if not arg:
            return [Reply(data=replies.SYNTAX)], False
        self.username = arg
        return [Reply(data=replies.OK)], True

    def _pass_(self, arg: bytes) -> tuple[list[Event], bool]:
        if self.username is None:
            return [Reply(data=replies.WANT_USER)], False
        if not arg:
            return [Reply(data=replies.SYNTAX)], False
        return [self._authenticate(self.username, arg)], True

    def _apop(self, arg: bytes) -> tuple[list[Event], bool]:
        # pop3_apop(): the user ends at the first space; the "digest" is all
        # after that one space, spaces included, and may be empty.
        user, space, digest = arg.partition(b" ")
        if not space:
            return [Reply(data=replies.SYNTAX)], False
        return [self._authenticate(user, digest)], True

    def _authenticate(self, user: bytes, password: bytes) -> Authenticate:
        return Authenticate(user=user, password=password, timestamp=self.timestamp)


@dataclass(kw_only=True)
class Message:
    """One message of the listing: its path below the Maildir and its size."""

    path: str  # "new/<name>" or "cur/<name>"
    size: int
    deleted: bool = False

    @property
    def uidl(self) -> bytes:
        """printfn(): the name without "new/"/"cur/" and without ":info"."""
        return self.path[4:].split(":", 1)[0].encode("utf-8", "surrogateescape")


@dataclass
class Pop3d(_Session):
    """qmail-pop3d's side: the TRANSACTION state over a fixed list of messages."""

    messages: list[Message]
    last: int = 0
    state: State = field(default=State.TRANSACTION)

    @classmethod
    def over(cls, listing: Sequence[tuple[str, int]]) -> Pop3d:
        return cls([Message(path=p, size=s) for p, s in listing])

    def _number(self, arg: bytes) -> int | Reply:
        """msgno(): the index of the message ``arg`` names, or the error reply."""
        digits, u = scan_ulong(arg)
        if not digits:
            return Reply(data=replies.SYNTAX)
        if not u:
            return Reply(data=replies.NO_ZERO)
        if u - 1 >= len(self.messages):
            return Reply(data=replies.TOO_BIG)
        if self.messages[u - 1].deleted:
            return Reply(data=replies.DELETED)
        return u - 1

    def _unimplemented(self, arg: bytes) -> tuple[list[Event], bool]:
        return [Reply(data=replies.UNIMPLEMENTED)], False

    def _stat(self, arg: bytes) -> tuple[list[Event], bool]:
        # The count includes deleted messages; the total does not (pop3_stat).
        total = sum(m.size for m in self.messages if not m.deleted) & ULONG_MASK
        data = replies.number(len(self.messages)) + b" %d\r\n" % total
        return [Reply(data=data)], True

    def _rset(self, arg: bytes) -> tuple[list[Event], bool]:
        for m in self.messages:
            m.deleted = False
        self.last = 0
        return [Reply(data=replies.OK)], True

    def _last(self, arg: bytes) -> tuple[list[Event], bool]:
        return [Reply(data=replies.number(self.last) + b"\r\n")], True

    def _dele(self, arg: bytes) -> tuple[list[Event], bool]:
        i = self._number(arg)
        if isinstance(i, Reply):
            return [i], False
        self.messages[i].deleted = True
        self.last = max(self.last, i + 1)
        return [Reply(data=replies.OK)], True

    def _entry(self, i: int, uidl: bool) -> bytes:
        value = self.messages[i].uidl if uidl else b"%d" % self.messages[i].size
        return b"%d " % (i + 1) + value + b"\r\n"

    def _listing(self, arg: bytes, uidl: bool) -> tuple[list[Event], bool]:
        if arg:
            i = self._number(arg)
            if isinstance(i, Reply):
                return [i], False
            return [Reply(data=b"+OK " + self._entry(i, uidl))], True
        lines = [replies.OK]
        lines += [self._entry(i, uidl) for i, m in enumerate(self.messages) if not m.deleted]
        lines.append(replies.END_OF_LIST)
        return [Reply(data=b"".join(lines))], True

    def _list_(self, arg: bytes) -> tuple[list[Event], bool]:
        return self._listing(arg, uidl=False)

    def _uidl(self, arg: bytes) -> tuple[list[Event], bool]:
        return self._listing(arg, uidl=True)

    def _top(self, arg: bytes) -> tuple[list[Event], bool]:
        i = self._number(arg)
        if isinstance(i, Reply):
            return [i], False
        # pop3_top(): skip the number, then spaces; a second number n means
        # "headers and n body lines" (limit n+1, wrapping); none means all.
        rest = arg[scan_ulong(arg)[0] :].lstrip(b" ")
        digits, count = scan_ulong(rest)
        limit = (count + 1) & ULONG_MASK if digits else 0
        return [Fetch(path=self.messages[i].path, limit=limit)], True

    def _quit(self, arg: bytes) -> tuple[list[Event], bool]:
        unlink = tuple(m.path for m in self.messages if m.deleted)
        rename = tuple(
            (m.path, "cur/" + m.path[4:] + ":2,")
            for m in self.messages
            if not m.deleted and m.path.startswith("new/")
        )
        return [Commit(unlink=unlink, rename=rename)], True


def blast(message: bytes, limit: int) -> bytes:
    """qmail-pop3d's blast(): a message as RETR/TOP send it, after the ``+OK``.

    LF becomes CRLF (a CR already there stays, so CR LF becomes CR CR LF), a
    line starting with "." gets another, and the end is "\\r\\n.\\r\\n" — an
    extra blank line. With ``limit`` (count+1), the header, the blank line and
    ``limit-1`` body lines.
    """
    out: list[bytes] = []
    in_headers = True
    lines = message.split(b"\n")
    for n, line in enumerate(lines):
        complete = n < len(lines) - 1
        if not complete and not line:
            break
        if limit and not in_headers:
            limit -= 1
            if not limit:
                break
        if not line:
            in_headers = False
        elif line.startswith(b"."):
            out.append(b".")
        out.append(line)
        out.append(b"\r\n")
    out.append(replies.END_OF_MESSAGE)
    return b"".join(out)
