"""The POP3 core: qmail-popup's and qmail-pop3d's replies, byte for byte, and the parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.pop3 import replies
from server.pop3.core import (
    MAX_LINE,
    NEED_DATA,
    OTHER,
    TABLE,
    Authenticate,
    Command,
    Commit,
    Event,
    Fetch,
    LineReader,
    LineTooLong,
    Pop3d,
    Popup,
    ProtocolError,
    Reply,
    State,
    blast,
    scan_ulong,
)


def cmd(line: bytes) -> Command:
    return Command.parse(line + b"\r\n")


def data(events: list[Event]) -> bytes:
    assert all(isinstance(e, Reply) for e in events)
    return b"".join(e.data for e in events if isinstance(e, Reply))


def state_of(session: Popup | Pop3d) -> State:
    return session.state


def popup() -> Popup:
    return Popup(hostname=b"mx.example.org", pid=4242, now=1700000000)


def pop3d() -> Pop3d:
    return Pop3d.over([("cur/100.1.h:2,S", 120), ("new/200.2.h", 30), ("new/300.3.h", 4)])


# -- the texts, pinned byte for byte (qmail-popup.c, qmail-pop3d.c) -------------


def test_pinned_texts() -> None:
    assert replies.OK == b"+OK \r\n"
    assert replies.AUTHORIZATION_FIRST == b"-ERR authorization first\r\n"
    assert replies.UNIMPLEMENTED == b"-ERR unimplemented\r\n"
    assert replies.AUTH_FAILED == b"-ERR authorization failed\r\n"
    assert replies.DELETED == b"-ERR already deleted\r\n"
    assert replies.NO_MAILDIR == b"-ERR this user has no $HOME/Maildir\r\n"


def test_greeting_and_timestamp() -> None:
    p = popup()
    assert p.greeting().data == b"+OK <4242.1700000000@mx.example.org>\r\n"
    assert p.timestamp == b"<4242.1700000000@mx.example.org>"


# -- parsing: commands.c ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "verb", "arg"),
    [
        (b"USER alice\r\n", b"USER", b"alice"),
        (b"user   alice  \n", b"user", b"alice  "),
        (b"STAT\r\r\n", b"STAT\r", b""),  # only one CR goes
        (b"\r\n", b"", b""),
        (b"TOP 1 5\r\n", b"TOP", b"1 5"),
        (b"US\0ER x\r\n", b"US", b""),  # a NUL ends the C string
        (b" user x\r\n", b"", b"user x"),
    ],
)
def test_command_parse(line: bytes, verb: bytes, arg: bytes) -> None:
    c = Command.parse(line)
    assert (c.verb, c.arg) == (verb, arg)


def test_line_reader_ways() -> None:
    stream = b"USER a\r\nPASS b\nQUIT\r\nNOO"
    whole = LineReader()
    whole.receive_data(stream)
    assert _drain(whole) == [cmd(b"USER a"), cmd(b"PASS b"), cmd(b"QUIT")]
    assert whole.trailing == b"NOO"
    single = LineReader()
    got: list[Command] = []
    for i in range(len(stream)):
        single.receive_data(stream[i : i + 1])
        got += _drain(single)
    assert got == _drain_all(stream)


def _drain(reader: LineReader) -> list[Command]:
    out = []
    while (event := reader.next_event()) is not NEED_DATA:
        assert isinstance(event, Command)
        out.append(event)
    return out


def _drain_all(stream: bytes) -> list[Command]:
    reader = LineReader()
    reader.receive_data(stream)
    return _drain(reader)


def test_overlong_line_is_a_protocol_error() -> None:
    reader = LineReader()
    reader.receive_data(b"x" * (MAX_LINE + 2))
    with pytest.raises(LineTooLong):
        reader.next_event()


def test_long_line_below_the_limit_gets_qmails_reply() -> None:
    reader = LineReader()
    reader.receive_data(b"X" * 10000 + b"\r\n")
    event = reader.next_event()
    assert isinstance(event, Command)
    assert data(popup().handle(event)) == replies.AUTHORIZATION_FIRST


# -- qmail-popup --------------------------------------------------------------------


def test_popup_before_login() -> None:
    p = popup()
    assert data(p.handle(cmd(b"STAT"))) == b"-ERR authorization first\r\n"
    assert data(p.handle(cmd(b"PASS x"))) == b"-ERR USER first\r\n"
    assert data(p.handle(cmd(b"USER"))) == b"-ERR syntax error\r\n"
    assert data(p.handle(cmd(b"NOOP"))) == b"+OK \r\n"
    assert data(p.handle(cmd(b"uSeR bob"))) == b"+OK \r\n"
    assert data(p.handle(cmd(b"PASS"))) == b"-ERR syntax error\r\n"
    assert p.state is State.AUTHORIZATION
    [auth] = p.handle(cmd(b"PASS pw word"))
    assert auth == Authenticate(user=b"bob", password=b"pw word", timestamp=p.timestamp)
    assert auth.fd3() == b"bob\0pw word\0<4242.1700000000@mx.example.org>\0"
    assert state_of(p) is State.CHECKING
    with pytest.raises(ProtocolError):
        p.handle(cmd(b"NOOP"))


def test_popup_apop_and_quit() -> None:
    p = popup()
    assert data(p.handle(cmd(b"APOP bob"))) == b"-ERR syntax error\r\n"
    [auth] = p.handle(cmd(b"APOP bob  c0ffee"))
    assert isinstance(auth, Authenticate)
    assert (auth.user, auth.password) == (b"bob", b" c0ffee")
    q = popup()
    assert data(q.handle(cmd(b"quit"))) == b"+OK \r\n"
    assert q.state is State.CLOSED


# -- qmail-pop3d --------------------------------------------------------------------


def test_stat_list_uidl() -> None:
    s = pop3d()
    assert data(s.handle(cmd(b"STAT"))) == b"+OK 3 154\r\n"
    assert data(s.handle(cmd(b"LIST"))) == b"+OK \r\n1 120\r\n2 30\r\n3 4\r\n.\r\n"
    assert data(s.handle(cmd(b"UIDL"))) == (b"+OK \r\n1 100.1.h\r\n2 200.2.h\r\n3 300.3.h\r\n.\r\n")
    assert data(s.handle(cmd(b"LIST 2"))) == b"+OK 2 30\r\n"
    assert data(s.handle(cmd(b"UIDL 1"))) == b"+OK 1 100.1.h\r\n"


def test_message_numbers() -> None:
    s = pop3d()
    assert data(s.handle(cmd(b"DELE"))) == b"-ERR syntax error\r\n"
    assert data(s.handle(cmd(b"DELE x"))) == b"-ERR syntax error\r\n"
    assert data(s.handle(cmd(b"DELE 0"))) == b"-ERR messages are counted from 1\r\n"
    assert data(s.handle(cmd(b"DELE 4"))) == b"-ERR not that many messages\r\n"
    # scan_ulong wraps: 2**64 + 2 is message 2
    assert data(s.handle(cmd(b"LIST 18446744073709551618"))) == b"+OK 2 30\r\n"


def test_dele_last_rset() -> None:
    s = pop3d()
    assert data(s.handle(cmd(b"LAST"))) == b"+OK 0\r\n"
    assert data(s.handle(cmd(b"DELE 2"))) == b"+OK \r\n"
    assert data(s.handle(cmd(b"DELE 2"))) == b"-ERR already deleted\r\n"
    assert data(s.handle(cmd(b"RETR 2"))) == b"-ERR already deleted\r\n"
    assert data(s.handle(cmd(b"LAST"))) == b"+OK 2\r\n"
    # STAT counts deleted messages but not their size
    assert data(s.handle(cmd(b"STAT"))) == b"+OK 3 124\r\n"
    assert data(s.handle(cmd(b"LIST"))) == b"+OK \r\n1 120\r\n3 4\r\n.\r\n"
    assert data(s.handle(cmd(b"RSET"))) == b"+OK \r\n"
    assert data(s.handle(cmd(b"LAST"))) == b"+OK 0\r\n"
    assert data(s.handle(cmd(b"STAT"))) == b"+OK 3 154\r\n"


def test_retr_top_fetch() -> None:
    s = pop3d()
    assert s.handle(cmd(b"RETR 1")) == [Fetch(path="cur/100.1.h:2,S", limit=0)]
    assert s.handle(cmd(b"TOP 2 0")) == [Fetch(path="new/200.2.h", limit=1)]
    assert s.handle(cmd(b"TOP 2   5")) == [Fetch(path="new/200.2.h", limit=6)]
    assert s.handle(cmd(b"TOP 2")) == [Fetch(path="new/200.2.h", limit=0)]
    # RETR takes TOP's count too: it is the same function in qmail-pop3d.c
    assert s.handle(cmd(b"RETR 2 1")) == [Fetch(path="new/200.2.h", limit=2)]


def test_quit_commits() -> None:
    s = pop3d()
    s.handle(cmd(b"DELE 3"))
    [commit] = s.handle(cmd(b"QUIT"))
    assert commit == Commit(unlink=("new/300.3.h",), rename=(("new/200.2.h", "cur/200.2.h:2,"),))
    assert s.state is State.CLOSED


def test_unknown_and_noop() -> None:
    s = pop3d()
    assert data(s.handle(cmd(b"APOP x y"))) == b"-ERR unimplemented\r\n"
    assert data(s.handle(cmd(b"noop"))) == b"+OK \r\n"


def test_table_rows_have_a_default() -> None:
    for state, row in TABLE.items():
        if row:
            assert OTHER in row, state


# -- blast() ------------------------------------------------------------------------

MESSAGE = b"From: a\nSubject: s\n\nline 1\n.dot\n\nline 3\n"


def test_blast_whole() -> None:
    assert blast(MESSAGE, 0) == (
        b"From: a\r\nSubject: s\r\n\r\nline 1\r\n..dot\r\n\r\nline 3\r\n\r\n.\r\n"
    )


@pytest.mark.parametrize(
    ("count", "body"),
    [(0, b""), (1, b"line 1\r\n"), (2, b"line 1\r\n..dot\r\n"), (9, None)],
)
def test_blast_top(count: int, body: bytes | None) -> None:
    out = blast(MESSAGE, count + 1)
    if body is None:
        assert out == blast(MESSAGE, 0)
    else:
        assert out == b"From: a\r\nSubject: s\r\n\r\n" + body + b"\r\n.\r\n"


def test_blast_odd_endings() -> None:
    assert blast(b"", 0) == b"\r\n.\r\n"
    assert blast(b"a\r\nb", 0) == b"a\r\r\nb\r\n\r\n.\r\n"


def test_scan_ulong() -> None:
    assert scan_ulong(b"12ab") == (2, 12)
    assert scan_ulong(b"x1") == (0, 0)
    assert scan_ulong(b"18446744073709551617") == (20, 1)


# -- properties -------------------------------------------------------------------

VERBS = [b"USER", b"PASS", b"APOP", b"QUIT", b"NOOP", b"STAT", b"LIST", b"UIDL", b"DELE"]
VERBS += [b"RETR", b"TOP", b"RSET", b"LAST", b"XTND", b"", b"uidl"]
lines = st.tuples(
    st.sampled_from(VERBS),
    st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),
).map(lambda t: t[0] + b" " + t[1] + b"\r\n")
streams = st.lists(lines, max_size=20).map(b"".join)


def _run(session: Popup | Pop3d, commands: list[Command]) -> list[Event]:
    out: list[Event] = []
    for c in commands:
        if session.state in (State.CLOSED, State.CHECKING):
            break
        out += session.handle(c)
    return out


@given(streams, st.binary(max_size=8).map(lambda b: b.replace(b"\n", b"")))
def test_property_three_ways(stream: bytes, trailing: bytes) -> None:
    whole = _drain_all(stream)
    reader = LineReader()
    single: list[Command] = []
    for i in range(len(stream + trailing)):
        reader.receive_data((stream + trailing)[i : i + 1])
        single += _drain(reader)
    assert single == whole
    assert reader.trailing == trailing
    for make in (popup, pop3d):
        a, b = make(), make()
        assert _run(a, whole) == _run(b, single)


@given(st.binary(max_size=300))
def test_property_any_bytes_parse_or_protocol_error(stream: bytes) -> None:
    for session in (popup(), pop3d()):
        reader = LineReader()
        reader.receive_data(stream)
        try:
            while (event := reader.next_event()) is not NEED_DATA:
                assert isinstance(event, Command)
                for out in session.handle(event):
                    assert isinstance(out, Reply | Authenticate | Fetch | Commit)
        except ProtocolError:
            pass


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=50))
def test_property_blast(message: bytes, limit: int) -> None:
    out = blast(message, limit)
    assert out.endswith(b"\r\n.\r\n")
    body = out[: -len(b".\r\n")]
    # every line is CRLF-terminated and no line of the content starts a lone "."
    for line in body.split(b"\r\n")[:-1]:
        assert not (line.startswith(b".") and not line.startswith(b".."))
