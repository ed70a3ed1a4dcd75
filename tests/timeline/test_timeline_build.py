"""harness.timeline: qmail-send's log lines folded into a timeline per message."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.timeline import Attempt, Bounce, Message, Timeline, build, next_retry
from server.send import log as qlog

# A log as qmail-send writes it (qmail-send.c), built with our own line formats.
GREYLISTED = [
    (0.0, qlog.new_msg(17)),
    (0.0, qlog.info_msg(17, 205, "alice@example.org", 1000, 1000)),
    (0.0, qlog.starting_delivery(1, 17, "remote", "erin@far.example")),
    (0.0, qlog.status({"local": 0, "remote": 1}, {"local": 10, "remote": 20}, False)),
    (0.0, qlog.delivery_deferral(1, b"127.0.2.20 does not like recipient.\nGiving up.\n")),
    (401.0, qlog.starting_delivery(2, 17, "remote", "erin@far.example")),
    (1301.0, qlog.delivery_success(2, b"127.0.2.20 accepted message.\n")),
    (1301.0, qlog.end_msg(17)),
]


def test_a_deferral_then_a_success() -> None:
    tl = build(GREYLISTED)
    assert tl.span == 1301.0
    [msg] = tl.messages
    assert msg == Message(
        id=17,
        queued=0.0,
        sender="alice@example.org",
        size=205,
        qp=1000,
        uid=1000,
        attempts=(
            Attempt(
                delivery=1,
                channel="remote",
                recipient="erin@far.example",
                try_number=1,
                started=0.0,
                finished=0.0,
                letter="Z",
                report="127.0.2.20_does_not_like_recipient./Giving_up./",
            ),
            Attempt(
                delivery=2,
                channel="remote",
                recipient="erin@far.example",
                try_number=2,
                started=401.0,
                finished=1301.0,
                letter="K",
                report="127.0.2.20_accepted_message./",
            ),
        ),
        ended=1301.0,
    )
    assert [a.result for a in msg.attempts] == ["deferral", "success"]
    assert msg.recipients() == [("remote", "erin@far.example")]


def test_lines_may_keep_their_newline_and_other_lines_are_ignored() -> None:
    lines = [(0.0, "status: local 0/10 remote 0/20\n"), (0.0, "new msg 5\n")]
    lines += [(1.0, "warning: trouble opening todo/5; will try again later\n")]
    lines += [(2.0, "end msg 5\n"), (3.0, "alert: oh no! lost spawn connection! dying...")]
    tl = build(lines)
    assert tl.messages == (Message(id=5, queued=0.0, ended=2.0),)
    assert tl.span == 3.0
    assert build(lines, until=10.0).span == 10.0
    assert build([], until=10.0).span == 10.0


def test_a_bounce_is_linked_to_the_message_it_became_by_qp() -> None:
    lines = [
        (0.0, qlog.new_msg(7)),
        (0.0, qlog.starting_delivery(1, 7, "local", "nobody@example.org")),
        (0.0, qlog.delivery_failure(1, b"Sorry, no mailbox here by that name. (#5.1.1)\n")),
        (0.0, qlog.bounce_msg(7, 1004)),
        (0.0, qlog.end_msg(7)),
        (0.0, qlog.new_msg(9)),
        (0.0, qlog.info_msg(9, 700, "", 1004, 1000)),
    ]
    a, b = build(lines).messages
    assert a.bounces == (Bounce(time=0.0, qp=1004, message=1),)
    assert b.bounce_of == 0 and b.sender == ""


def test_a_bounce_seen_after_its_new_message_is_linked_too() -> None:
    lines = [
        (0.0, qlog.new_msg(9)),
        (0.0, qlog.info_msg(9, 700, "", 1004, 1000)),
        (5.0, qlog.bounce_msg(7, 1004)),
    ]
    bounced, bounce = build(lines).messages[::-1]
    assert bounced.id == 7 and bounced.bounces == (Bounce(time=5.0, qp=1004, message=0),)
    assert bounce.bounce_of == 1


def test_a_message_number_used_again_is_a_new_message() -> None:
    """Message numbers are inode numbers; a later message can get the same one."""
    lines = [(0.0, "new msg 3"), (1.0, "end msg 3"), (9.0, "new msg 3"), (9.0, "end msg 3")]
    first, second = build(lines).messages
    assert (first.queued, first.ended, second.queued, second.ended) == (0.0, 1.0, 9.0, 9.0)


def test_a_log_that_starts_late() -> None:
    """qmail-send restarted over a full queue: no ``new msg``; a result without its start."""
    lines = [
        (0.0, "delivery 4: deferral: too_early/"),
        (0.0, "starting delivery 1: msg 12 to local bob@example.org"),
        (0.0, "delivery 1: report mangled, will defer"),
        (1.0, "starting delivery 2: msg 12 to local bob@example.org"),
    ]
    [msg] = build(lines).messages
    assert msg.queued is None and msg.sender is None
    first, second = msg.attempts
    assert (first.letter, first.result, first.try_number) == ("?", "mangled", 1)
    assert (second.letter, second.result, second.finished, second.try_number) == (
        None,
        "pending",
        None,
        2,
    )


def test_a_triple_bounce() -> None:
    lines = [(0.0, "new msg 8"), (0.0, "triple bounce: discarding bounce/8"), (0.0, "end msg 8")]
    [msg] = build(lines).messages
    assert msg.triple_bounced == 0.0 and msg.ended == 0.0


def test_next_retry_follows_qmail_send_schedule() -> None:
    """birth + (isqrt(age at the attempt) + c)^2; c = 10 local, 20 remote (qmail-send.c)."""
    local = [
        Attempt(
            delivery=i,
            channel="local",
            recipient="b",
            try_number=i,
            started=s,
            finished=s,
            letter="Z",
        )
        for i, s in enumerate([0.0, 101.0, 401.0, 901.0], 1)
    ]
    msg = Message(id=1, queued=0.0, attempts=tuple(local))
    assert [next_retry(msg, a) for a in local] == [100.0, 400.0, 900.0, 1600.0]
    remote = Attempt(
        delivery=9, channel="remote", recipient="r", try_number=1, started=5.0, letter="Z"
    )
    assert next_retry(Message(id=2, queued=5.0), remote) == 405.0
    assert next_retry(Message(id=2), remote) is None  # birth unknown
    done = Attempt(delivery=9, channel="remote", recipient="r", try_number=1, started=5.0)
    assert next_retry(Message(id=2, queued=5.0), done) is None


# -- properties -------------------------------------------------------------------

ADDRESSES = st.builds(
    "{}@{}".format,
    st.sampled_from(["bob", "erin", "a.b+c", "x-1"]),
    st.sampled_from(["example.org", "far.example", "[127.0.0.1]"]),
)
CHANNELS = st.sampled_from(["local", "remote"])
# A recipient's story: deferrals, then a success, a failure or nothing yet.
STORIES = st.tuples(st.integers(0, 4), st.sampled_from(["K", "D", ""]))
REPORTS = st.sampled_from([b"", b"ok\n", b"did 1+0+0\n", b"a b%c\xff\n\n", b"no newline"])


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[tuple[float, str]], dict[int, dict[str, object]]]:
    """Several messages' log lines, interleaved, and what each message should show."""
    ids = draw(st.lists(st.integers(1, 10**9), min_size=1, max_size=4, unique=True))
    streams: list[list[str]] = []
    expect: dict[int, dict[str, object]] = {}
    delivery = 0
    for msgid in ids:
        sender = draw(st.one_of(st.just(""), ADDRESSES))
        lines = [qlog.new_msg(msgid), qlog.info_msg(msgid, msgid % 999, sender, 1, 2)]
        rcpts = draw(st.lists(st.tuples(CHANNELS, ADDRESSES), max_size=3, unique=True))
        letters: list[tuple[str, str, str]] = []
        for channel, rcpt in rcpts:
            deferrals, last = draw(STORIES)
            for letter in "Z" * deferrals + last:
                delivery += 1
                report = draw(REPORTS)
                lines.append(qlog.starting_delivery(delivery, msgid, channel, rcpt))  # type: ignore[arg-type]
                fmt = {"K": qlog.delivery_success, "Z": qlog.delivery_deferral}
                lines.append(fmt.get(letter, qlog.delivery_failure)(delivery, report))
                letters.append((channel, rcpt, letter))
        ends = draw(st.booleans())
        if ends:
            lines.append(qlog.end_msg(msgid))
        streams.append(lines)
        expect[msgid] = {"sender": sender, "letters": letters, "ends": ends}
    order = [i for i, s in enumerate(streams) for _ in s]
    draw(st.randoms(use_true_random=False)).shuffle(order)
    merged: list[tuple[float, str]] = []
    at = [0] * len(streams)
    for i in order:
        merged.append((float(len(merged)), streams[i][at[i]]))
        at[i] += 1
    return merged, expect


@given(logs())
def test_every_message_comes_back_with_its_attempts(
    case: tuple[list[tuple[float, str]], dict[int, dict[str, object]]],
) -> None:
    lines, expect = case
    tl = build(lines)
    assert sorted(m.id for m in tl.messages) == sorted(expect)
    for msg in tl.messages:
        want = expect[msg.id]
        assert msg.sender == want["sender"]
        got = sorted((a.channel, a.recipient, a.letter) for a in msg.attempts)
        assert got == sorted(want["letters"])  # type: ignore[call-overload]
        assert (msg.ended is not None) == want["ends"]
        for a in msg.attempts:
            same = [b for b in msg.attempts if (b.channel, b.recipient) == (a.channel, a.recipient)]
            assert a.try_number == same.index(a) + 1
            assert a.finished is not None and a.started <= a.finished


@settings(max_examples=50)
@given(logs(), st.data())
def test_a_prefix_of_the_log_gives_a_prefix_of_the_timeline(
    case: tuple[list[tuple[float, str]], dict[int, dict[str, object]]], data: st.DataObject
) -> None:
    """Feeding lines as they come (a log still being written) never contradicts the end."""
    lines, _ = case
    cut = data.draw(st.integers(0, len(lines)))
    early, full = build(lines[:cut]), build(lines)
    for before, after in zip(early.messages, full.messages, strict=False):
        assert before.id == after.id
        assert len(before.attempts) <= len(after.attempts)
        for a, b in zip(before.attempts, after.attempts, strict=False):
            assert (a.delivery, a.recipient, a.started) == (b.delivery, b.recipient, b.started)
            assert a.letter in (None, b.letter)


LINE_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        ["new msg ", "end msg ", "info msg 1: bytes ", "starting delivery 1: msg ", "delivery 1: "]
    ).flatmap(lambda p: st.text(max_size=30).map(lambda s: p + s)),
)


@given(st.lists(st.tuples(st.floats(0, 1e7), LINE_TEXT), max_size=30))
def test_any_lines_give_a_timeline_and_never_an_error(lines: list[tuple[float, str]]) -> None:
    tl = build(sorted(lines, key=lambda p: p[0]))
    assert isinstance(tl, Timeline)
    assert tl.span == max((t for t, _ in lines), default=0.0)


def test_a_double_bounce_comes_from_the_odd_sender_and_is_linked_too() -> None:
    """qmail-send.c injectbounce: a bounce of a bounce is sent from <#@[]>."""
    lines = [
        (0.0, "new msg 2"),
        (0.0, "info msg 2: bytes 700 from <> qp 10 uid 1000"),
        (0.0, "starting delivery 1: msg 2 to local ghost@example.org"),
        (0.0, "delivery 1: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/"),
        (0.0, "bounce msg 2 qp 11"),
        (0.0, "end msg 2"),
        (0.0, "new msg 3"),
        (0.0, "info msg 3: bytes 1181 from <#@[]> qp 11 uid 1000"),
    ]
    bounced, double = build(lines).messages
    assert bounced.bounces[0].message == 1 and double.bounce_of == 0


def test_a_qp_of_a_message_not_from_a_bounce_sender_is_no_bounce() -> None:
    """pids are reused: a message from a real sender with the same qp is not the bounce."""
    lines = [
        (0.0, "new msg 4"),
        (0.0, "info msg 4: bytes 1 from <alice@example.org> qp 11 uid 1000"),
        (5.0, "bounce msg 2 qp 11"),
        (5.0, "new msg 6"),
        (5.0, "info msg 6: bytes 700 from <> qp 11 uid 1000"),
    ]
    tl = build(lines)
    other, bounced, bounce = tl.messages
    assert other.bounce_of is None and other.id == 4
    assert bounced.bounces[0].message == 2 and bounce.bounce_of == 1


FORWARD = [
    (0.0, "new msg 7"),
    (0.0, "info msg 7: bytes 100 from <bob@example.org> qp 20 uid 1000"),
    (0.0, "starting delivery 1: msg 7 to local postmaster@example.org"),
    (0.0, "delivery 1: success: did_0+1+0/qp_21/"),
    (0.0, "end msg 7"),
    (0.0, "new msg 8"),
    (0.0, "info msg 8: bytes 130 from <bob@example.org> qp 21 uid 1000"),
]


def test_a_forward_is_linked_to_its_copy_by_qmail_local_s_qp() -> None:
    """qmail-local.c count_print: "did F+W+P" then "qp Q" for the forwarded copy."""
    original, copy = build(FORWARD).messages
    assert original.attempts[0].forwarded_as == 1 and copy.forward_of == 0
    # qmail-send may read the copy's todo file before qmail-lspawn's report
    early = FORWARD[:2] + FORWARD[5:] + FORWARD[2:5]
    original, copy = build(early).messages
    assert original.attempts[0].forwarded_as == 1 and copy.forward_of == 0
