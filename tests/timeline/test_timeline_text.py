"""harness.timeline as text: logsafe() read back, times, one line per event."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.timeline import as_text, build, entries, readable, when
from server.send import log as qlog
from server.send.log import logsafe


def test_readable_undoes_logsafe_for_reading() -> None:
    assert readable("CNAME_lookup_failed_temporarily._(#4.4.3)/") == (
        "CNAME lookup failed temporarily. (#4.4.3)",
    )
    assert readable("127.0.2.20_does_not_like_recipient./Remote_host_said:_451_later/") == (
        "127.0.2.20 does not like recipient.",
        "Remote host said: 451 later",
    )
    assert readable("") == ()
    assert readable("did_1+0+0/") == ("did 1+0+0",)
    assert readable("no_newline") == ("no newline",)
    assert readable("a//b") == ("a", "", "b")


def test_readable_keeps_the_slashes_of_a_url() -> None:
    logged = logsafe(b"Remote host said: 451 See http://pobox.com/~djb/docs/smtplf.html.\n")
    assert readable(logged) == (
        "Remote host said: 451 See http://pobox.com/~djb/docs/smtplf.html.",
    )
    two = logsafe(b"see https://ex.org/grey/list\nRemote host said: 451 try later\n")
    assert readable(two) == ("see https://ex.org/grey/list", "Remote host said: 451 try later")
    code = logsafe(b"see http://x.example/a\n451-more\n")
    assert readable(code) == ("see http://x.example/a", "451-more")


# Text without "_", "/", "%" or ":" (logsafe's outputs and a URL's scheme) and
# with only printable ASCII, space and newline comes back exactly.
PLAIN = st.text(
    alphabet=st.sampled_from(
        [chr(c) for c in range(32, 127) if chr(c) not in "_/%:"] + ["\n", " ", " "]
    ),
    max_size=80,
)


@given(PLAIN)
def test_readable_inverts_logsafe_on_plain_text(text: str) -> None:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    assert readable(logsafe(text)) == tuple(lines)


@given(st.binary(max_size=80))
def test_readable_takes_any_logged_text(data: bytes) -> None:
    lines = readable(logsafe(data))
    assert all("\n" not in line and "_" not in line for line in lines)
    kept = "".join(lines).replace(" ", "").replace("/", "")  # a URL keeps its "/"
    assert kept == logsafe(data).replace("/", "").replace("_", "")


def test_when_counts_from_the_start() -> None:
    assert [when(t) for t in (0, 0.4, 1, 400, 401, 86400 * 2 + 3600, 604800 + 3661)] == [
        "+0s",
        "+0s",
        "+1s",
        "+6m40s",
        "+6m41s",
        "+2d1h",
        "+7d1h1m1s",
    ]


def _deferrals(n: int, text: bytes = b"busy\n") -> list[tuple[float, str]]:
    """A local delivery deferred n times on qmail-send's schedule, then delivered."""
    lines = [(0.0, qlog.new_msg(42)), (0.0, qlog.info_msg(42, 237, "alice@example.org", 7, 1000))]
    t = 0.0
    for i in range(1, n + 1):
        lines.append((t, qlog.starting_delivery(i, 42, "local", "bob@example.org")))
        lines.append((t, qlog.delivery_deferral(i, text)))
        t = float((int(t**0.5) + 10) ** 2 + 1)
    lines.append((t, qlog.starting_delivery(n + 1, 42, "local", "bob@example.org")))
    lines.append((t, qlog.delivery_success(n + 1, b"did 0+0+1\n")))
    lines.append((t, qlog.end_msg(42)))
    return lines


def test_text_lines_byte_exact() -> None:
    assert as_text(build(_deferrals(2))) == [
        "msg 42 from <alice@example.org>, 237 bytes",
        "          +0s  queued",
        "          +0s  deferral  local bob@example.org, try 1, next try +1m40s: busy",
        "       +1m41s  deferral  local bob@example.org, try 2, next try +6m40s: busy",
        "       +6m41s  success   local bob@example.org, try 3: did 0+0+1",
        "       +6m41s  end       after 6m41s",
        "",
    ]


def test_a_multi_line_report_continues_under_it() -> None:
    lines = _deferrals(1, b"Connected to 1.2.3.4 but greeting failed.\nRemote host said: 421 no\n")
    text = as_text(build(lines))
    assert text[2].endswith("next try +1m40s: Connected to 1.2.3.4 but greeting failed.")
    assert text[3] == " " * 26 + "Remote host said: 421 no"


def test_brief_folds_a_run_of_the_same_result() -> None:
    tl = build(_deferrals(6))
    full, brief = as_text(tl), as_text(tl, brief=True)
    assert len(full) == 1 + 1 + 7 + 1 + 1
    assert brief == [
        "msg 42 from <alice@example.org>, 237 bytes",
        "          +0s  queued",
        "          +0s  deferral  local bob@example.org, try 1, next try +1m40s: busy",
        "       +1m41s  ...       4 more like this, to +26m41s",
        "      +41m41s  deferral  local bob@example.org, try 6, next try +1h: busy",
        "        +1h1s  success   local bob@example.org, try 7: did 0+0+1",
        "        +1h1s  end       after 1h1s",
        "",
    ]


def test_brief_keeps_a_changed_report() -> None:
    lines = _deferrals(2)
    lines[5] = (101.0, qlog.delivery_deferral(2, b"other\n"))
    tl = build(lines)
    assert as_text(tl, brief=True) == as_text(tl)


def test_bounces_pending_attempts_and_a_late_log() -> None:
    lines = [
        (0.0, "starting delivery 3: msg 5 to remote x@far.example"),
        (0.0, "new msg 6"),
        (0.0, "info msg 6: bytes 900 from <> qp 77 uid 1000"),
        (0.0, "starting delivery 4: msg 6 to local alice@example.org"),
        (0.0, "delivery 4: report mangled, will defer"),
        (1.0, "bounce msg 5 qp 77"),
        (1.0, "triple bounce: discarding bounce/5"),
    ]
    tl = build(lines)
    assert as_text(tl) == [
        "msg 5 from <?>",
        "          +0s  pending   remote x@far.example, try 1: no result logged",
        "          +1s  bounce    queued as msg 6 (qp 77)",
        "          +1s  discarded triple bounce",
        "          +1s  waiting   still in the queue",
        "",
        "msg 6 from <>, 900 bytes",
        "          +0s  queued    bounce of msg 5",
        "          +0s  mangled   local alice@example.org, try 1, next try +1m40s: "
        "report mangled, will defer",
        "          +1s  waiting   still in the queue, next try +1m40s",
        "",
    ]
    assert [e.kind for e in entries(tl, tl.messages[1])] == ["queued", "mangled", "waiting"]


def test_an_empty_log() -> None:
    assert as_text(build([])) == ["(qmail-send logged no messages)"]


@given(st.lists(st.integers(0, 5), max_size=8), st.integers(1, 3))
def test_brief_only_leaves_lines_out(runs: list[int], rcpts: int) -> None:
    """--brief drops lines and adds "... N more" ones; every other line is the full one's."""
    lines = [(0.0, qlog.new_msg(1))]
    delivery, t = 0, 0.0
    for i, n in enumerate(runs):
        for _ in range(n):
            delivery += 1
            t += 100.0
            rcpt = f"r{delivery % rcpts}@example.org"
            lines.append((t, qlog.starting_delivery(delivery, 1, "local", rcpt)))
            lines.append((t, qlog.delivery_deferral(delivery, f"busy {i}\n".encode())))
    tl = build(lines)
    full, brief = as_text(tl), as_text(tl, brief=True)
    kept = [line for line in brief if "more like this" not in line]
    assert len(brief) <= len(full)
    assert all(line in full for line in kept)
    folded = sum(int(line.split()[2]) for line in brief if "more like this" in line)
    if rcpts > 1:
        assert all(" for local r" in line for line in brief if "more like this" in line)
    assert len(full) - len(kept) == folded


def test_forwards_and_bounces_name_each_other() -> None:
    lines = [
        (0.0, "new msg 7"),
        (0.0, "info msg 7: bytes 100 from <bob@example.org> qp 20 uid 1000"),
        (0.0, "starting delivery 1: msg 7 to local postmaster@example.org"),
        (0.0, "delivery 1: success: did_0+1+0/qp_21/"),
        (0.0, "end msg 7"),
        (0.0, "new msg 8"),
        (0.0, "info msg 8: bytes 130 from <bob@example.org> qp 21 uid 1000"),
    ]
    text = as_text(build(lines))
    assert text[2] == (
        "          +0s  success   local postmaster@example.org, try 1, forwarded as msg 8: "
        "did 0+1+0"
    )
    assert text[3] == " " * 26 + "qp 21"
    assert text[7] == "          +0s  queued    forwarded from msg 7"
