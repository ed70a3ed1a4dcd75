"""The SMTP client core: smtpcode(), blast(), and the dialogue's reports."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.remote import replies as R
from server.remote.program import converse
from server.remote.smtpclient import (
    NEED_DATA,
    Finished,
    ReplyReader,
    Send,
    SmtpClient,
    blast,
)

from .fakes import ScriptedConnection

IP = "127.0.2.10"


def read_all(data: bytes, chunk: int | None = None) -> list[tuple[int, bytes]]:
    reader = ReplyReader()
    out = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(len(data))]
    for piece in pieces:
        reader.receive_data(piece)
        while (reply := reader.next_reply()) is not None:
            out.append((reply.code, reply.text))
    return out


class TestReplyReader:
    def test_single_line(self) -> None:
        assert read_all(b"250 ok\r\n") == [(250, b"250 ok\n")]

    def test_multiline_code_from_first_line(self) -> None:
        data = b"250-first\r\n550-second\r\n450 third\r\n"
        assert read_all(data) == [(250, b"250-first\n550-second\n450 third\n")]

    def test_byte_at_a_time_and_trailing(self) -> None:
        data = b"220-hello\r\n220 there\r\n250 next\r\n354 x"
        whole = read_all(data)
        assert whole == read_all(data, chunk=1)
        assert whole == [(220, b"220-hello\n220 there\n"), (250, b"250 next\n")]

    def test_garbage_code_is_large(self) -> None:
        # "abc": (49*10+50)*10+51 = 5451 -> counts as a permanent failure
        assert read_all(b"abc\n")[0][0] == 5451

    def test_text_capped(self) -> None:
        code, text = read_all(b"250 " + b"x" * 6000 + b"\r\n")[0]
        assert code == 250 and len(text) == 5000

    def test_bare_newline_after_code(self) -> None:
        assert read_all(b"250\n") == [(250, b"250\n")]

    @given(st.binary(max_size=300), st.integers(min_value=1, max_value=7))
    def test_chunking_never_matters(self, data: bytes, size: int) -> None:
        reader = ReplyReader()
        chunked = []
        for i in range(0, len(data), size):
            reader.receive_data(data[i : i + size])
            while (reply := reader.next_reply()) is not None:
                chunked.append(reply)
        whole = ReplyReader()
        whole.receive_data(data)
        replies = []
        while (reply := whole.next_reply()) is not None:
            replies.append(reply)
        assert chunked == replies


class TestBlast:
    def test_dot_stuffing_and_crlf(self) -> None:
        writes, partial = blast(b"Subject: x\n\n.hidden\n..two\nbare\rcr\n")
        assert not partial
        assert b"".join(w for w, _ in writes) == (
            b"Subject: x\r\n\r\n..hidden\r\n...two\r\nbare\rcr\r\n.\r\n"
        )
        assert writes[-1][1] is True

    def test_eight_bit_passes(self) -> None:
        writes, _ = blast("caf\u00e9\n".encode())
        assert b"".join(w for w, _ in writes) == "caf\u00e9\r\n.\r\n".encode()

    def test_partial_final_line(self) -> None:
        writes, partial = blast(b"line\nno newline")
        assert partial
        assert writes == []  # still in the buffer, never flushed

    def test_buffer_of_1024(self) -> None:
        writes, _ = blast(b"x" * 3000 + b"\n")
        sizes = [len(w) for w, _ in writes]
        assert sizes[:2] == [1024, 1024]
        assert [c for _, c in writes] == [False, False, True]
        assert b"".join(w for w, _ in writes) == b"x" * 3000 + b"\r\n.\r\n"

    def test_empty_message(self) -> None:
        assert blast(b"") == ([(b".\r\n", True)], False)


def talk(replies: dict[str, bytes | None], message: bytes = b"hi\n", rcpts: int = 1) -> bytes:
    conn = ScriptedConnection(dict(replies))
    client = SmtpClient(
        partner=IP,
        helohost=b"me.example",
        sender=b"a@b.example",
        recipients=[f"r{i}@far.example".encode() for i in range(rcpts)],
        message=lambda: message,
    )
    return converse(client, conn, 10.0)


class TestDialogue:
    def test_accepted(self) -> None:
        out = talk({})
        assert out == (
            b"r\0K127.0.2.10 accepted message.\nRemote host said: 250 ok 1700000000 qp 42\n\0"
        )

    def test_commands_sent(self) -> None:
        conn = ScriptedConnection({})
        client = SmtpClient(
            partner=IP,
            helohost=b"me.example",
            sender=b"",
            recipients=[b"x@y"],
            message=lambda: b"a\n",
        )
        converse(client, conn, 10.0)
        assert bytes(conn.received) == (
            b"HELO me.example\r\nMAIL FROM:<>\r\nRCPT TO:<x@y>\r\nDATA\r\na\r\n.\r\nQUIT\r\n"
        )
        assert conn.closed

    def test_greeting_not_220(self) -> None:
        out = talk({"greeting": b"421 busy\r\n"})
        assert (
            out == b"ZConnected to 127.0.2.10 but greeting failed.\nRemote host said: 421 busy\n\0"
        )

    def test_greeting_5xx_is_still_temporary(self) -> None:
        assert talk({"greeting": b"554 no\r\n"}).startswith(
            b"ZConnected to 127.0.2.10 but greeting"
        )

    def test_helo_rejected(self) -> None:
        out = talk({"HELO": b"501 who\r\n"})
        assert out.startswith(b"ZConnected to 127.0.2.10 but my name was rejected.\n")

    def test_sender_rejected(self) -> None:
        perm = talk({"MAIL": b"553 no\r\n"})
        temp = talk({"MAIL": b"451 later\r\n"})
        assert perm == (
            b"DConnected to 127.0.2.10 but sender was rejected.\nRemote host said: 553 no\n\0"
        )
        assert temp.startswith(b"ZConnected to 127.0.2.10 but sender was rejected.\n")

    def test_recipient_reports(self) -> None:
        answers = iter([b"550 no such\r\n", b"451 full\r\n", b"250 ok\r\n"])
        out = talk({"RCPT": lambda line: next(answers)}, rcpts=3)  # type: ignore[dict-item]
        parts = out.split(b"\0")
        assert parts[0] == (
            b"h127.0.2.10 does not like recipient.\nRemote host said: 550 no such\n"
        )
        assert parts[1] == b"s127.0.2.10 does not like recipient.\nRemote host said: 451 full\n"
        assert parts[2] == b"r"
        assert parts[3].startswith(b"K127.0.2.10 accepted message.")

    def test_no_recipient_accepted(self) -> None:
        out = talk({"RCPT": b"550 no\r\n"})
        assert out.split(b"\0")[1] == b"DGiving up on 127.0.2.10.\n"

    def test_data_rejected(self) -> None:
        assert talk({"DATA": b"554 no\r\n"}).split(b"\0")[1] == (
            b"D127.0.2.10 failed on DATA command.\nRemote host said: 554 no\n"
        )
        assert talk({"DATA": b"451 no\r\n"}).split(b"\0")[1].startswith(b"Z127.0.2.10 failed on")

    def test_after_data(self) -> None:
        assert talk({"body": b"554 spam\r\n"}).split(b"\0")[1] == (
            b"D127.0.2.10 failed after I sent the message.\nRemote host said: 554 spam\n"
        )
        assert talk({"body": b"452 x\r\n"}).split(b"\0")[1].startswith(b"Z127.0.2.10 failed after")

    def test_dropped_before_greeting(self) -> None:
        assert talk({"greeting": None}) == (
            b"ZConnected to 127.0.2.10 but connection died. (#4.4.2)\n\0"
        )

    def test_dropped_after_dot_is_possible_duplicate(self) -> None:
        out = talk({"body": None})
        assert out.split(b"\0")[1] == (
            b"ZConnected to 127.0.2.10 but connection died. Possible duplicate! (#4.4.2)\n"
        )

    def test_partial_line(self) -> None:
        out = talk({}, message=b"no newline")
        assert out == b"r\0" + R.PARTIALLINE.encode() + b"\0"

    def test_nul_in_reply_shown_as_question_mark(self) -> None:
        out = talk({"MAIL": b"553 a\0b\r\n"})
        assert b"Remote host said: 553 a?b\n" in out

    def test_quit_write_failure_is_dropped(self) -> None:
        client = SmtpClient(
            partner=IP, helohost=b"h", sender=b"s", recipients=[b"r"], message=lambda: b""
        )
        client.receive_data(b"421 bye\r\n")
        event = client.next_event()
        assert event == Send(b"QUIT\r\n")
        client.send_failed()
        final = client.next_event()
        assert isinstance(final, Finished)
        assert final.output == b"ZConnected to 127.0.2.10 but connection died. (#4.4.2)\n\0"

    def test_needs_data_first(self) -> None:
        client = SmtpClient(
            partner=IP, helohost=b"h", sender=b"s", recipients=[b"r"], message=lambda: b""
        )
        assert client.next_event() is NEED_DATA


@settings(max_examples=120, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8), st.booleans())
def test_random_replies_end_in_kzd(chunks: list[bytes], eof: bool) -> None:
    """Whatever the server says, the client finishes with one K, Z or D report."""
    client = SmtpClient(
        partner=IP, helohost=b"h", sender=b"s", recipients=[b"r1", b"r2"], message=lambda: b"m\n"
    )
    feed = iter(chunks)
    for _ in range(200):
        event = client.next_event()
        if isinstance(event, Finished):
            break
        if isinstance(event, Send):
            client.sent()
            continue
        chunk = next(feed, None)
        if chunk is None:
            client.connection_lost()
        else:
            client.receive_data(chunk)
    else:
        raise AssertionError("client never finished")
    reports = event.output.split(b"\0")
    assert reports[-1] == b""
    assert reports[-2][:1] in (b"K", b"Z", b"D")
    assert all(r[:1] in (b"r", b"h", b"s") for r in reports[:-2])


def test_garbage_greeting() -> None:
    out = talk({"greeting": b"hello there\r\n"})
    assert out == (
        b"ZConnected to 127.0.2.10 but greeting failed.\nRemote host said: hello there\n\0"
    )


def test_silent_server_times_out() -> None:
    conn = ScriptedConnection({"greeting": b""})
    client = SmtpClient(
        partner=IP, helohost=b"h", sender=b"s", recipients=[b"r"], message=lambda: b""
    )
    assert converse(client, conn, 1.0) == (
        b"ZConnected to 127.0.2.10 but connection died. (#4.4.2)\n\0"
    )
