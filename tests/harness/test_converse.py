"""harness.converse: transcripts as turns, and a turn-by-turn client on a socket.

The servers here are small scripts on the other end of a socketpair, each in
a thread; they behave as the programs whose habits matter to pacing do
(qmail-popup's input buffer, a server that hangs up, one that owes a line).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.converse import Turn, client_bytes, converse, turns
from harness.scenario.values import TranscriptLine, parse_match, parse_transcript

Script = Callable[[socket.socket], None]


def transcript(text: str) -> tuple[TranscriptLine, ...]:
    return parse_transcript(text)


def test_turns_group_pipelined_lines_and_count_the_replies_owed() -> None:
    played = turns(
        transcript(
            "S: 220 mx ESMTP\n"
            "C: HELO a\n"
            "S: 250 mx\n"
            "C: MAIL FROM:<a@b>\n"
            "C: RCPT TO:<c@d>\n"
            "C: DATA\n"
            "S: 250 ok\n"
            "S: 250 ok\n"
            "S: 354 go ahead\n"
            "R: body\\r\\n.\\r\\n\n"
            "S: ~ ^250 ok\n"
            "C: QUIT\n"
        )
    )
    assert played == (
        Turn(b"", 1),
        Turn(b"HELO a\r\n", 1),
        Turn(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", 3),
        Turn(b"body\r\n.\r\n", 1),
        Turn(b"QUIT\r\n", 0),
    )


line_kind = st.sampled_from(["S", "C", "R"])
words = st.text(alphabet="ABCDEFGHIJ klmnop<>@.", min_size=1, max_size=12)


@given(st.lists(st.tuples(line_kind, words), max_size=30))
def test_turns_keep_every_client_byte_and_every_reply(lines: list[tuple[str, str]]) -> None:
    parsed = tuple(
        TranscriptLine(who="S", expect=parse_match(text))
        if who == "S"
        else TranscriptLine(who=who, data=text.encode() + (b"\r\n" if who == "C" else b""))  # type: ignore[arg-type]
        for who, text in lines
    )
    played = turns(parsed)
    assert client_bytes(played) == b"".join(line.data for line in parsed if line.who != "S")
    assert sum(turn.replies for turn in played) == sum(line.who == "S" for line in parsed)
    assert all(turn.client for turn in played[1:])  # only the greeting has no client bytes
    assert all(turn.replies for turn in played[:-1])  # every turn but the last is answered


@pytest.fixture
def serve() -> Iterator[Callable[[Script], socket.socket]]:
    threads: list[threading.Thread] = []
    sockets: list[socket.socket] = []

    def start(script: Script) -> socket.socket:
        ours, theirs = socket.socketpair()
        sockets.extend((ours, theirs))

        def run() -> None:
            with theirs:
                script(theirs)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return ours

    yield start
    for thread in threads:
        thread.join(10)
    for sock in sockets:
        sock.close()


def popup_like(sock: socket.socket) -> None:
    """Answers line by line from a 128-byte read; after PASS it forgets the
    rest of that read, as qmail-popup does when it hands over to qmail-pop3d."""
    sock.sendall(b"+OK <1.2@mx>\r\n")
    while chunk := sock.recv(128):
        for line in chunk.split(b"\r\n")[:-1]:
            sock.sendall(b"+OK " + line + b"\r\n")
            if line.startswith(b"PASS"):
                break


POP3 = "S: ~ ^\\+OK\nC: USER bob\nS: +OK USER bob\nC: PASS secret\nS: +OK PASS secret\n"


def test_a_turn_waits_for_its_replies_so_nothing_pipelined_after_pass_is_lost(
    serve: Callable[[Script], socket.socket],
) -> None:
    played = turns(transcript(POP3 + "C: STAT\nS: +OK STAT\nC: QUIT\nS: +OK QUIT\n"))
    heard = converse(serve(popup_like), played)
    assert heard.split(b"\r\n")[1:] == [
        b"+OK USER bob",
        b"+OK PASS secret",
        b"+OK STAT",
        b"+OK QUIT",
        b"",
    ]


def test_pipelined_group_goes_out_together(serve: Callable[[Script], socket.socket]) -> None:
    """A group is one write: the popup-like server loses what followed PASS in it."""
    played = turns(transcript("S: ~ ^\\+OK\nC: USER bob\nC: PASS secret\nC: STAT\nS: +OK x\n"))
    heard = converse(serve(popup_like), played, turn_limit=5)
    assert heard.endswith(b"+OK USER bob\r\n+OK PASS secret\r\n")


def hangs_up_after_greeting(sock: socket.socket) -> None:
    sock.sendall(b"421 mx closing\r\n")
    sock.shutdown(socket.SHUT_RDWR)


def test_a_server_that_hangs_up_ends_the_session_with_what_it_said(
    serve: Callable[[Script], socket.socket],
) -> None:
    played = turns(transcript("S: 220 mx\nC: HELO a\nS: 250 mx\nC: QUIT\nS: 221 mx\n"))
    assert converse(serve(hangs_up_after_greeting), played) == b"421 mx closing\r\n"


def owes_a_line(sock: socket.socket) -> None:
    """Says nothing to the first command; answers the second; then reads to the end."""
    sock.sendall(b"220 mx\r\n")
    received = b""
    while received.count(b"\r\n") < 2:
        received += sock.recv(100)
    sock.sendall(b"250 second\r\n")
    while sock.recv(100):
        pass
    sock.sendall(b"221 bye\r\n")


def test_a_reply_that_never_comes_costs_the_turn_limit_not_the_session(
    serve: Callable[[Script], socket.socket],
) -> None:
    played = turns(transcript("S: 220 mx\nC: FIRST\nS: 250 first\nC: SECOND\nS: 250 second\n"))
    heard = converse(serve(owes_a_line), played, turn_limit=0.05)
    assert heard == b"220 mx\r\n250 second\r\n221 bye\r\n"  # what came after EOF too


def test_output_without_a_final_crlf_is_kept(serve: Callable[[Script], socket.socket]) -> None:
    def partial(sock: socket.socket) -> None:
        sock.sendall(b"220 mx\r\n250 no end")

    played = turns(transcript("S: 220 mx\nC: NOOP\nS: 250 no end\n"))
    assert converse(serve(partial), played, turn_limit=5) == b"220 mx\r\n250 no end"
