"""``qmail-sim show``: a bundled scenario's timeline, as text and as an HTML file."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from harness.cli import main

SUITE = Path(__file__).resolve().parents[2] / "scenarios"
CNAME = SUITE / "harness" / "cname-servfail-bounce.yaml"

# A scenario of our own that fails: its expectation names a line never logged.
FAILING = """\
name: expects a delivery that never comes
include: base-control.yaml
users:
  bob: {dotqmail: {"": "|echo busy; exit 111"}}
steps:
  - inject:
      args: [bob@example.org]
      env: {QMAILUSER: alice, QMAILHOST: example.org}
      message: |
        Subject: x

        y
  - run: idle
  - advance: 2m
  - expect:
      log: ["delivery 9: success: did_1+0+0/"]
"""


@pytest.fixture(scope="module")
def cname(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str]:
    """The CNAME SERVFAIL scenario once: deferred for a week, then bounced."""
    html = tmp_path_factory.mktemp("show") / "cname.html"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["show", str(CNAME), "--html", str(html)])
    return code, out.getvalue(), html.read_text(encoding="utf-8")


def test_a_deferral_a_week_of_retries_then_a_bounce(cname: tuple[int, str, str]) -> None:
    code, out, _ = cname
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("PASS  ")
    assert re.fullmatch(r"  msg \d+ from <alice@example.org>, \d+ bytes", lines[1])
    assert lines[2] == "            +0s  queued"
    assert lines[3] == (
        "            +0s  deferral  remote bob@far.example, try 1, next try +6m40s: "
        "CNAME lookup failed temporarily. (#4.4.3)"
    )
    # qmail-send.c: retries at birth + (isqrt(age) + 20)^2, woken a second late
    assert lines[4].startswith("         +6m41s  deferral  remote bob@far.example, try 2,")
    assert lines[5].startswith("        +26m41s  deferral  remote bob@far.example, try 3,")
    failure = next(i for i, line in enumerate(lines) if "failure" in line)
    assert "CNAME lookup failed temporarily. (#4.4.3)" in lines[failure]
    assert lines[failure + 1].strip() == (
        "I'm not going to try again; this message has been in the queue too long."
    )
    assert re.fullmatch(r" +\+7d1h1s  bounce    queued as msg \d+ \(qp \d+\)", lines[failure + 2])
    assert lines[failure + 3].endswith("end       after 7d1h1s")
    bounce = lines[failure + 5 :]
    assert re.fullmatch(r"  msg \d+ from <>, \d+ bytes", bounce[0])
    assert re.fullmatch(r" +\+7d1h1s  queued    bounce of msg \d+", bounce[1])
    assert "success   local alice@example.org, try 1: did 1+0+0" in bounce[2]


def test_the_html_file(cname: tuple[int, str, str]) -> None:
    _, _, page = cname
    assert page.count("<svg") == 2  # the legend and the one scenario
    assert "PASS</span> CNAME lookup SERVFAIL defers" in page
    assert page.count("next try +") >= 30 and "<script" not in page


def test_brief_and_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(CNAME), "--brief", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\+6m41s  \.\.\.       \d+ more like this, to \+6d\d+h", out), out
    assert len(out.splitlines()) < 20


def test_a_failing_scenario_exits_1_and_still_shows_its_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fail.yaml").write_text(FAILING)
    assert main(["show", str(tmp_path / "fail.yaml")]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  ")
    assert "+1m41s  deferral  local bob@example.org, try 2, next try +6m40s: busy" in out
    assert "+2m  waiting   still in the queue, next try +6m40s" in out


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("name: x\nsteps: [{nonsense: 1}]\n")
    (tmp_path / "fail.yaml").write_text(FAILING)
    assert main(["show", str(tmp_path / "broken.yaml")]) == 2
    assert main(["show", str(tmp_path / "missing.yaml")]) == 2
    assert main(["show", str(CNAME), "--name", "no such scenario"]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "no scenario named 'no such scenario'" in err
    unwritable = tmp_path / "no-such-dir" / "t.html"
    assert main(["show", str(tmp_path / "fail.yaml"), "--html", str(unwritable)]) == 2
