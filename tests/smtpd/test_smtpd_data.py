"""blast(): transparency, bare LF, hop counting, databytes, qmail-queue failures."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.smtpd import replies
from server.smtpd.body import Blast

from .helpers import replies_of, session

START = b"MAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"


def body_of(data: bytes) -> bytes:
    out = session(START + data)
    (msg,) = out.queued
    return msg.message.split(b"\n", 2)[2]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (b"a\r\nb\r\n.\r\n", b"a\nb\n"),
        (b"..x\r\n.\r\n", b".x\n"),
        (b".x\r\n.\r\n", b"x\n"),  # a leading dot always goes
        (b".\rx\r\n.\r\n", b".\rx\n"),  # except before CR not followed by LF
        (b"a\rb\r\n.\r\n", b"a\rb\n"),
        (b"a\r\r\n.\r\n", b"a\r\n"),
        (b".\r\n", b""),
        (b"\xff\x00\r\n.\r\n", b"\xff\x00\n"),
    ],
)
def test_transparency(sent: bytes, stored: bytes) -> None:
    assert body_of(sent) == stored


@pytest.mark.parametrize("sent", [b"a\nb\r\n.\r\n", b"\n.\r\n", b".\n", b"x\r\n..\n"])
def test_bare_lf_ends_the_connection_at_once(sent: bytes) -> None:
    out = session(START + sent + b"QUIT\r\n", eof=False)
    assert out.output.endswith(b"354 go ahead\r\n" + replies.STRAY_NEWLINE)
    assert out.exit_code == 1
    assert out.queued == []


def _headers(n: int, name: bytes) -> bytes:
    return b"".join(name + b": x\r\n" for _ in range(n))


@pytest.mark.parametrize("name", [b"Received", b"DELIVERED-TO", b"rEcEiVeDx", b"deliveredz"])
def test_hops(name: bytes) -> None:
    ok = session(START + _headers(99, name) + b"\r\n.\r\n")
    assert len(ok.queued) == 1
    loop = session(START + _headers(100, name) + b"\r\n.\r\n")
    assert loop.queued == []
    assert loop.output.endswith(replies.TOO_MANY_HOPS)


def test_hops_count_only_in_the_header() -> None:
    out = session(START + b"X: y\r\n\r\n" + _headers(100, b"Received") + b".\r\n")
    assert len(out.queued) == 1


def test_databytes_counts_stored_bytes_and_reads_to_the_end() -> None:
    fits = session(START + b"12345678\r\n.\r\nNOOP\r\n", databytes=9)
    assert len(fits.queued) == 1
    over = session(START + b"123456789\r\n.\r\nNOOP\r\n", databytes=9)
    assert over.queued == []
    assert replies_of(over.output)[-2:] == [replies.DATABYTES[:-2], b"250 ok"]


def test_hops_win_over_databytes() -> None:
    out = session(START + _headers(100, b"Received") + b".\r\n", databytes=10)
    assert out.output.endswith(replies.TOO_MANY_HOPS)


@pytest.mark.parametrize(
    ("error", "reply"),
    [
        ("Zqq write error or disk full (#4.3.0)", b"451 qq write error or disk full (#4.3.0)"),
        ("Dqq permanent problem (#5.3.0)", b"554 qq permanent problem (#5.3.0)"),
    ],
)
def test_queue_failure_replies(error: str, reply: bytes) -> None:
    out = session(START + b".\r\nNOOP\r\n", result=(error, 1))
    assert replies_of(out.output)[-2:] == [reply, b"250 ok"]


def test_overlong_command_line_is_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.smtpd import core

    monkeypatch.setattr(core, "MAX_COMMAND", 100)
    out = session([b"NOOP\r\n", b"x" * 60, b"y" * 60, b"\r\n"])
    assert replies_of(out.output)[1:] == [b"250 ok", replies.NOMEM[:-2]]
    assert out.exit_code == 1


def test_message_past_our_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.smtpd import body

    monkeypatch.setattr(body, "MAX_MESSAGE", 10)
    out = session(START + b"0123456789abc\r\n.\r\nNOOP\r\n")
    assert out.queued == []
    assert replies_of(out.output)[-2:] == [b"451 qq write error or disk full (#4.3.0)", b"250 ok"]


_pieces = st.sampled_from(
    [b"\r\n", b"\n", b"\r", b".", b"..", b"x", b"Received: a", b"DELIVERED-to: b", b"deliver", b" "]
)


def _state(blast: Blast) -> tuple[bytes, int, int, bool, int]:
    """All a Blast has gathered: what it stored, counted and where it is."""
    return bytes(blast.out), blast.size, blast.hops, blast.in_header, blast.state


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_pieces, st.binary(max_size=5)), max_size=30), st.integers(0, 40))
def test_line_shortcuts_match_the_byte_loop(parts: list[bytes], databytes: int) -> None:
    data = b"".join(parts)
    fast, slow = Blast(databytes), Blast(databytes, fast=False)
    assert fast.feed(data, 0) == slow.feed(data, 0)
    assert _state(fast) == _state(slow)


def _feed_pieces(blast: Blast, pieces: list[bytes]) -> list[tuple[int, str | None]]:
    """Each piece fed as its own read, as a connection brings them; stops at a verdict."""
    results = []
    for piece in pieces:
        results.append(blast.feed(piece, 0))
        if results[-1][1] is not None:
            break
    return results


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.lists(st.one_of(_pieces, st.binary(max_size=5)), max_size=12), max_size=6),
    st.integers(0, 200),
)
@example([[b"\n", b".", b"\r\n"]], 0)  # a LF with no CR before a dot: a stray newline
def test_line_shortcuts_match_the_byte_loop_read_by_read(
    reads: list[list[bytes]], databytes: int
) -> None:
    pieces = [b"".join(read) for read in reads]
    # past the header, where whole runs of lines go in one step
    pieces.insert(0, b"Subject: x\r\n\r\nline one\r\nline two\r\n")
    fast, slow = Blast(databytes), Blast(databytes, fast=False)
    assert _feed_pieces(fast, pieces) == _feed_pieces(slow, pieces)
    assert _state(fast) == _state(slow)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(_pieces, st.binary(max_size=5)), max_size=30))
def test_paired_says_whether_a_stray_cr_or_lf_is_there(parts: list[bytes]) -> None:
    from server.smtpd.body import _STRAY, _paired

    lines = b"".join(parts)
    assert _paired(lines) == (_STRAY.search(lines) is None)
