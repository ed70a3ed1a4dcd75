"""harness.timeline_log: real qmail-send logs (multilog, tai64nlocal, splogger) read back."""

from __future__ import annotations

import calendar
import itertools
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import main
from harness.timeline import build
from harness.timeline_log import TAI64_BASE, parse

START = 1_700_000_000


def multilog(t: float, line: str) -> str:
    secs, nanos = int(t), round((t - int(t)) * 1e9)
    return f"@{TAI64_BASE + secs:016x}{nanos:08x} {line}"


def splogger(t: float, line: str) -> str:
    secs, micros = int(t), round((t - int(t)) * 1e6)
    return f"Nov 14 22:13:20 mx qmail: {secs}.{micros:06d} {line}"


def local(t: float, line: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(t)))
    return f"{stamp}.{round((t - int(t)) * 1e9):09d} {line}"


def test_multilog() -> None:
    text = "@400000006553f1000000000a new msg 9\n@400000006553f2910000000e end msg 9\n"
    assert parse(text) == [(0.0, "new msg 9"), (pytest.approx(401.000000004), "end msg 9")]


def test_splogger_joins_a_long_line_back() -> None:
    """splogger.c sends a line past its buffer as ``<stamp>+<rest>`` with the same stamp."""
    text = (
        "Nov 14 22:13:20 mx qmail: 1700000000.000001 new msg 9\n"
        "Nov 14 22:13:21 mx qmail: 1700000001.500000 delivery 1: deferral: aaa\n"
        "Nov 14 22:13:21 mx qmail: 1700000001.500000+bbb/\n"
    )
    assert parse(text) == [
        (0.0, "new msg 9"),
        (pytest.approx(1.499999), "delivery 1: deferral: aaabbb/"),
    ]


def test_tai64nlocal_and_lines_without_a_stamp() -> None:
    text = (
        "new msg 1\n"
        "2023-11-14 22:13:20.000000000 info msg 1: bytes 5 from <> qp 1 uid 0\n"
        "2023-11-14 22:20:00.250000000 end msg 1\n"
        "end msg 2\n"
    )
    assert parse(text) == [
        (0.0, "new msg 1"),
        (0.0, "info msg 1: bytes 5 from <> qp 1 uid 0"),
        (400.25, "end msg 1"),
        (400.25, "end msg 2"),
    ]
    assert calendar.timegm(time.strptime("2023-11-14 22:13:20", "%Y-%m-%d %H:%M:%S")) == START


LINES = st.lists(
    st.tuples(st.integers(0, 10**7), st.text(alphabet=st.characters(codec="ascii"), max_size=40)),
    max_size=20,
)


@pytest.mark.parametrize("fmt", [multilog, splogger, local])
@given(LINES)
def test_stamped_lines_come_back_with_their_times(
    fmt: object, pairs: list[tuple[int, str]]
) -> None:
    pairs = [(t, line.replace("\n", " ")) for t, line in sorted(pairs)]
    text = "\n".join(fmt(START + t / 1000, line) for t, line in pairs)  # type: ignore[operator]
    got = parse(text)
    assert [line for _, line in got] == [line for _, line in pairs]
    if pairs:
        first = pairs[0][0] / 1000
        for (t, _), (want, _) in zip(got, pairs, strict=True):
            assert t == pytest.approx(want / 1000 - first, abs=1e-3)


@given(st.text(max_size=300))
def test_any_text_reads_without_error_and_time_never_goes_back(text: str) -> None:
    got = parse(text)
    assert len(got) <= len(text.split("\n"))
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(got))


def test_show_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        (0.0, "new msg 305713"),
        (0.0, "info msg 305713: bytes 201 from <alice@example.org> qp 1234 uid 1000"),
        (0.0, "starting delivery 1: msg 305713 to remote bob@far.example"),
        (0.5, "delivery 1: deferral: CNAME_lookup_failed_temporarily._(#4.4.3)/"),
    ]
    log = tmp_path / "current"
    log.write_text("".join(multilog(START + t, line) + "\n" for t, line in lines))
    html = tmp_path / "log.html"
    assert main(["show", "--log", str(log), "--html", str(html)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "msg 305713 from <alice@example.org>, 201 bytes",
        "          +0s  queued",
        "          +0s  deferral  remote bob@far.example, try 1, next try +6m40s: "
        "CNAME lookup failed temporarily. (#4.4.3)",
        "          +0s  waiting   still in the queue, next try +6m40s",
        "",
    ]
    assert "LOG</span>" in html.read_text() and build(parse(log.read_text())).messages
    assert main(["show", "--log", str(tmp_path / "nothing")]) == 2
    assert main(["show", "--log", str(log), "x.yaml"]) == 2
    assert main(["show"]) == 2
