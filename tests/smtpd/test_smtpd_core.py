"""qmail-smtpd's conversation, reply by reply, against qmail-smtpd.c."""

from __future__ import annotations

import pytest

from server.smtpd import replies
from server.smtpd.core import TRANSITIONS, SmtpProtocolError, State

from .helpers import DATE, NOW, core, replies_of, session

GREETING = b"220 mx.example.org ESMTP\r\n"
ENVELOPE = b"MAIL FROM:<a@far.example>\r\nRCPT TO:<bob@example.org>\r\n"


def test_pinned_bytes() -> None:
    out = session(b"EHLO c\r\nHELO c\r\nNOOP\r\nVRFY x\r\nHELP\r\nRSET\r\nFOO\r\n\r\nQUIT\r\n")
    assert out.output == (
        b"220 mx.example.org ESMTP\r\n"
        b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        b"250 mx.example.org\r\n"
        b"250 ok\r\n"
        b"252 send some mail, i'll try my best\r\n"
        b"214 netqmail home page: http://qmail.org/netqmail\r\n"
        b"250 flushed\r\n"
        b"502 unimplemented (#5.5.1)\r\n"
        b"502 unimplemented (#5.5.1)\r\n"
        b"221 mx.example.org\r\n"
    )
    assert out.exit_code == 0


def test_whole_session_in_one_write_is_answered_in_order() -> None:
    data = b"HELO c\r\n" + ENVELOPE + b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"
    out = session(data)
    assert replies_of(out.output) == [
        b"220 mx.example.org ESMTP",
        b"250 mx.example.org",
        b"250 ok",
        b"250 ok",
        b"354 go ahead",
        b"250 ok %d qp 4242" % NOW,
        b"221 mx.example.org",
    ]
    (msg,) = out.queued
    assert msg.sender == b"a@far.example"
    assert msg.recipients == (b"bob@example.org",)
    assert msg.message == (
        b"Received: from unknown (HELO c) (127.0.0.1)\n  by mx.example.org with SMTP; "
        + DATE
        + b"\nSubject: x\n\nhi\n"
    )


def test_byte_at_a_time_gives_the_same_replies() -> None:
    data = b"EHLO c\r\n" + ENVELOPE + b"DATA\r\n..x\r\n.\r\nQUIT\r\n"
    whole = session(data)
    split = session([data[i : i + 1] for i in range(len(data))])
    assert split.output == whole.output
    assert [m.message for m in split.queued] == [m.message for m in whole.queued]


def test_greeting_is_smtpgreeting_whole() -> None:
    out = session(b"HELO x\r\nQUIT\r\n", greeting=b"mx.example.org hello there")
    assert replies_of(out.output) == [
        b"220 mx.example.org hello there ESMTP",
        b"250 mx.example.org hello there",
        b"221 mx.example.org hello there",
    ]


@pytest.mark.parametrize(
    ("commands", "last"),
    [
        (b"RCPT TO:<bob@example.org>\r\n", replies.WANT_MAIL),
        (b"DATA\r\n", replies.WANT_MAIL),
        (b"MAIL FROM:<a@b>\r\nDATA\r\n", replies.WANT_RCPT),
        (ENVELOPE + b"RSET\r\nDATA\r\n", replies.WANT_MAIL),
        (ENVELOPE + b"HELO x\r\nRCPT TO:<bob@example.org>\r\n", replies.WANT_MAIL),
        (b"MAIL FROM:<a@b>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n", replies.WANT_RCPT),
    ],
)
def test_out_of_order(commands: bytes, last: bytes) -> None:
    assert session(commands).output.endswith(last)


def test_case_and_spaces_in_verbs() -> None:
    out = session(b"mAiL   FROM:<a@b>\r\nrcpt to:<b@example.org>\r\nhelo\r\nHELO\tx\r\n")
    assert replies_of(out.output)[1:] == [
        b"250 ok",
        b"250 ok",
        b"250 mx.example.org",
        b"502 unimplemented (#5.5.1)",  # a tab does not end the verb
    ]


def test_nul_cuts_the_command_line() -> None:
    out = session(b"MAIL FROM:<a@b>\x00junk\r\nNOOP\x00 x\r\nQUIT\x00\r\n")
    assert replies_of(out.output)[1:] == [b"250 ok", b"250 ok", b"221 mx.example.org"]


def test_end_of_input_is_exit_1_without_a_reply() -> None:
    out = session(b"NOOP\r\nNOOP")  # the unfinished line is dropped
    assert out.output == GREETING + replies.NOOP
    assert out.exit_code == 1


def test_timeout() -> None:
    c = core()
    c.next_event()
    c.timeout()
    assert c.data_to_send() == GREETING + b"451 timeout (#4.4.2)\r\n"
    assert c.state is State.CLOSED
    with pytest.raises(SmtpProtocolError):
        c.timeout()


def test_relayclient_is_appended_and_skips_rcpthosts() -> None:
    data = b"MAIL FROM:<>\r\nRCPT TO:<x@far.example>\r\nDATA\r\n.\r\n"
    out = session(data, relayclient=b"-rc")
    assert out.queued[0].recipients == (b"x@far.example-rc",)
    assert out.queued[0].sender == b""


def test_badmailfrom_refuses_every_rcpt_not_the_mail() -> None:
    bmf = frozenset({b"spam@bad.example", b"@worse.example"})
    for sender in (b"SPAM@bad.example", b"x@WORSE.example"):
        out = session(
            b"MAIL FROM:<" + sender + b">\r\nRCPT TO:<b@example.org>\r\n", badmailfrom=bmf
        )
        assert replies_of(out.output)[1:] == [b"250 ok", replies.BADMAILFROM[:-2]]
    ok = session(b"MAIL FROM:<x@sub.worse.example>\r\nRCPT TO:<b@example.org>\r\n", badmailfrom=bmf)
    assert ok.output.endswith(b"250 ok\r\n250 ok\r\n")


def test_syntax_error_over_899_bytes() -> None:
    ok = b"MAIL FROM:<" + b"a" * 899 + b">\r\n"
    bad = b"MAIL FROM:<" + b"a" * 900 + b">\r\n"
    assert session(ok).output.endswith(b"250 ok\r\n")
    assert session(bad).output.endswith(replies.SYNTAX)


def test_localiphost_replaces_my_ip_literal_before_rcpthosts() -> None:
    data = (
        b"MAIL FROM:<a@b>\r\nRCPT TO:<bob@[127.0.0.1]>\r\nRCPT TO:<bob@[10.9.9.9]>\r\nDATA\r\n.\r\n"
    )
    out = session(data, liphost=b"example.org")
    assert replies_of(out.output)[2:4] == [b"250 ok", replies.NOGATEWAY[:-2]]
    assert out.queued[0].recipients == (b"bob@example.org",)


def test_relay_reject_patch() -> None:
    cmds = [
        b"RCPT TO:<a%b@example.org>",
        b"RCPT TO:<a!b@example.org>",
        b'RCPT TO:<"a@b"@example.org>',
        b"RCPT TO:<a%b>",
        b"RCPT TO:<ok@example.org>",
    ]
    data = b"MAIL FROM:<x@bad.example>\r\n" + b"\r\n".join(cmds) + b"\r\n"
    bmf = frozenset({b"x@bad.example"})
    on = session(data, relay_reject=True, badmailfrom=bmf, relayclient=b"")
    # Checked before badmailfrom and before RELAYCLIENT.
    assert replies_of(on.output)[2:] == [replies.RELAY_REJECT[:-2]] * 4 + [replies.BADMAILFROM[:-2]]
    off = session(data, badmailfrom=bmf)
    assert replies_of(off.output)[2:] == [replies.BADMAILFROM[:-2]] * 5


def test_helo_shown_only_when_it_differs_from_remotehost() -> None:
    data = b"HELO Client.Example\r\n" + ENVELOPE + b"DATA\r\n.\r\n"
    same = session(data, remotehost=b"client.example", remoteinfo=b"joe")
    assert same.queued[0].message.startswith(
        b"Received: from client.example (joe@127.0.0.1)\n  by mx.example.org with SMTP; "
    )
    other = session(data, remotehost=b"host example", remoteinfo=b"")
    assert other.queued[0].message.startswith(
        b"Received: from host?example (HELO Client.Example) (@127.0.0.1)\n"
    )


def test_every_state_has_a_way_out() -> None:
    for state, moves in TRANSITIONS.items():
        if state is not State.CLOSED:
            assert State.CLOSED in moves.values() or State.IDLE in moves.values()


def test_driver_misuse_is_a_protocol_error() -> None:
    c = core()
    with pytest.raises(SmtpProtocolError):
        c.queue_result("", 1)
    c.receive_data(b"")
    with pytest.raises(SmtpProtocolError):
        c.receive_data(b"x")


def test_unreadable_morercpthosts_cdb_is_die_control() -> None:
    from server.cdb import Reader
    from server.smtpd.policy import Rcpthosts

    broken = Reader(b"\xff" * 2048)  # every table points past the end
    hosts = Rcpthosts(hosts=frozenset({b"example.org"}), more=broken)
    out = session(
        b"MAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<a@far>\r\nNOOP\r\n", rcpthosts=hosts
    )
    assert replies_of(out.output)[2:] == [b"250 ok", replies.CONTROL[:-2]]
    assert out.exit_code == 1
