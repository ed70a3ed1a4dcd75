"""harness.logparse: qmail-send delivery lines, stamps, logsafe and its inverse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.logparse import LogLine, LogLineError, parse, unlogsafe
from server.send.log import logsafe

CNAME = "CNAME_lookup_failed_temporarily._(#4.4.3)/"


def test_tai64n_deferral() -> None:
    line = parse(f"@400000006920c0a01d2b3c4d delivery 12: deferral: {CNAME}")
    assert line == LogLine(kind="deferral", delivery=12, text=CNAME, stamp=line.stamp, message=None)
    assert line.stamp is not None and int(line.stamp) == 0x6920C0A0
    assert line.report == "CNAME lookup failed temporarily. (#4.4.3)\n"
    assert line.code == "4.4.3"


@pytest.mark.parametrize(
    "prefix",
    ["", "2026-11-25 19:00:00.123456789 ", "Nov 25 19:00:00 mx qmail: 1764097200.123456 "],
)
def test_other_stamps(prefix: str) -> None:
    line = parse(
        f"{prefix}delivery 3: failure: Sorry,_I_couldn't_find_any_host_named_x._(#5.1.2)/\n"
    )
    assert (line.kind, line.delivery, line.code) == ("failure", 3, "5.1.2")
    assert (line.stamp is None) == (prefix == "")


def test_starting_line() -> None:
    line = parse("starting delivery 7: msg 100001 to remote bob@far.example")
    assert (line.kind, line.message, line.channel, line.text) == (
        "starting",
        100001,
        "remote",
        "bob@far.example",
    )


def test_unlogsafe_keeps_slashes_inside_words() -> None:
    text = logsafe(
        "Sorry. Although I'm listed as a best-preference MX or A for that host,\n"
        "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"
    )
    assert "control/locals" in unlogsafe(text)
    assert unlogsafe(text).endswith("(#5.4.6)\n")


def test_logsafe_matches_qsutil() -> None:
    # qsutil.c: newline -> '/', '%' and bytes outside 33..126 -> '_'
    assert logsafe("a b%c\td\né") == "a_b_c_d/_"


@pytest.mark.parametrize(
    "text", ["", "new msg 100001", "delivery x: deferral: y", "delivery 1: retry: z", "a\nb"]
)
def test_not_a_delivery_line(text: str) -> None:
    with pytest.raises(LogLineError):
        parse(text)


REPORTS = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x10FF), max_size=80)


@given(REPORTS, st.integers(1, 10**6), st.sampled_from(["deferral", "failure", "success"]))
def test_round_trip(report: str, n: int, kind: str) -> None:
    safe = logsafe(report)
    line = parse(f"delivery {n}: {kind}: {safe}")
    assert (line.kind, line.delivery, line.text) == (kind, n, safe)
    assert logsafe(line.report) == safe  # unlogsafe only swaps within what logsafe could have made


@given(st.text(max_size=120))
def test_any_text_parses_or_says_why(text: str) -> None:
    try:
        parse(text)
    except LogLineError as exc:
        assert isinstance(exc, ValueError)


@given(REPORTS, st.text(max_size=30))
def test_trailing_garbage(report: str, garbage: str) -> None:
    """Garbage after the report is part of it, unless it starts another line."""
    safe = logsafe(report)
    raw = f"@400000006920c0a01d2b3c4d delivery 1: deferral: {safe}{garbage}"
    if "\n" in garbage.rstrip("\r\n"):
        with pytest.raises(LogLineError):
            parse(raw)
    else:
        assert parse(raw).text == (safe + garbage).rstrip("\r\n")
