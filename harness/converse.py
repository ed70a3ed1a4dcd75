"""Play a transcript to a server the way a client does: a turn, then its replies.

A transcript (``C:``/``R:`` lines the client sends, ``S:`` lines the server
must send) falls into :class:`Turn` s: the client lines that go out together
(one line, or a pipelined group) and the number of server lines owed before
the client speaks again. The greeting is the first turn's reply to nothing.

:func:`converse` drives a server over a connected socket — a TCP connection
(``--target live``) or one end of a socketpair whose other end is a
program's fd 0 and fd 1, as under tcpserver (``--target qmail:DIR``) — with
pexpect reading the replies. It sends a turn, waits until the owed lines
have come (or the server hung up, or :data:`TURN_LIMIT` passed: a server that
owes fewer lines than the transcript says is a divergence the caller reports
from the bytes, not a hang), and goes on; after the last turn it closes its
side and reads to the end.

Pacing matters to a real qmail: qmail-popup reads its input through a
128-byte buffer and then runs checkpassword and qmail-pop3d, which read fd 0
afresh, so a command sent with PASS, before PASS was answered, is lost
(qmail-popup.c). The simulator's in-process programs get the same pacing
from :class:`PacedInput`: every byte is there from the start, but a read
stops at the end of a turn, as a read() of the socket would while the
client waits.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import pexpect
from pexpect import fdpexpect

from harness.scenario.values import TranscriptLine

TURN_LIMIT = 10.0  # wall seconds to wait for the lines a turn is owed
SESSION_LIMIT = 60.0  # wall seconds for the server to finish after the last turn
CRLF = b"\r\n"


@dataclass(frozen=True)
class Turn:
    """Client bytes sent together, then how many server lines answer them."""

    client: bytes
    replies: int


def turns(transcript: Iterable[TranscriptLine]) -> tuple[Turn, ...]:
    """A transcript's turns; the first has no client bytes when the server speaks first."""
    out: list[Turn] = []
    client, replies = b"", 0
    for line in transcript:
        if line.who == "S":
            replies += 1
            continue
        if replies:
            out.append(Turn(client, replies))
            client, replies = b"", 0
        client += line.data
    if client or replies:
        out.append(Turn(client, replies))
    return tuple(out)


def client_bytes(played: Sequence[Turn]) -> bytes:
    """Everything the client sends, in one piece (the simulator's exchange)."""
    return b"".join(turn.client for turn in played)


class PacedInput(io.BytesIO):
    """A client's input that arrives in turns: it sends a turn, then waits for
    the replies. :meth:`read1` never reads past the end of the current turn,
    as a read() on a socket cannot; without ``turns`` every line is a turn."""

    def __init__(self, data: bytes, turns: Iterable[int] | None = None) -> None:
        super().__init__(data)
        if turns is None:
            turns = (len(line) for line in data.splitlines(keepends=True))
        self._ends: list[int] = []
        end = 0
        for size in turns:
            end += size
            self._ends.append(end)

    def read1(self, size: int | None = -1, /) -> bytes:
        here = self.tell()
        index = bisect.bisect_right(self._ends, here)
        if index < len(self._ends):
            left = self._ends[index] - here
            size = left if size is None or size < 0 else min(size, left)
        return super().read1(size)


def converse(
    sock: socket.socket,
    played: Sequence[Turn],
    *,
    turn_limit: float = TURN_LIMIT,
    session_limit: float = SESSION_LIMIT,
    netstrings: bool = False,
) -> bytes:
    """Play ``played`` over ``sock``; every byte the server sent, to its end.
    With ``netstrings`` (QMTP, QMQP) a server's reply is a netstring, not a line."""
    await_reply = _await_netstring if netstrings else _await_line
    heard = io.BytesIO()
    reader = fdpexpect.fdspawn(sock.fileno(), timeout=turn_limit, use_poll=True)
    reader.logfile_read = heard
    listening = True  # the server may still read what we send
    for turn in played:
        if turn.client and listening:
            try:
                sock.sendall(turn.client)
            except OSError:  # it hung up first (a deny, a 421): read what it said
                listening = False
        for _ in range(turn.replies):
            heard_now = await_reply(reader, turn_limit)
            if heard_now == "end":
                return heard.getvalue()
            if heard_now == "quiet":
                break
    if listening:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
    while await_reply(reader, session_limit) == "line":
        pass
    return heard.getvalue()


def _await_line(reader: fdpexpect.fdspawn, limit: float) -> Literal["line", "end", "quiet"]:
    """Wait for the server's next CRLF: it came, the server hung up, or it kept quiet."""
    try:
        index = reader.expect_exact([CRLF, pexpect.EOF, pexpect.TIMEOUT], timeout=limit)
    except ConnectionResetError:
        return "end"
    return ("line", "end", "quiet")[index]


#: a netstring's length and colon, as a QMTP or QMQP server writes them
_NETSTRING_LENGTH = re.compile(rb"(\d{1,4}):")


def _await_netstring(reader: fdpexpect.fdspawn, limit: float) -> Literal["line", "end", "quiet"]:
    """Wait for the server's next whole netstring (as :func:`_await_line` for a line)."""
    try:
        index = reader.expect([_NETSTRING_LENGTH, pexpect.EOF, pexpect.TIMEOUT], timeout=limit)
        if index == 0:
            rest = re.compile(rb"[\s\S]{%d}" % (int(reader.match.group(1)) + 1))
            index = reader.expect([rest, pexpect.EOF, pexpect.TIMEOUT], timeout=limit)
    except ConnectionResetError:
        return "end"
    return ("line", "end", "quiet")[index]


__all__ = ["SESSION_LIMIT", "TURN_LIMIT", "PacedInput", "Turn", "client_bytes", "converse", "turns"]
