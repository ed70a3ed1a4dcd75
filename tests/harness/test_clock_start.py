"""A scenario's clock can start at any instant, and the bundled suite passes on any day.

Issue 13: an expectation written against the simulator's one fixed start
(14 Nov 2023) hid that qmail writes the mbox From_ line's day zero-padded;
live and real qmail failed it on days 1-9 of every month. Running the whole
suite with the clock on a day 1 and a day 9 (the latter crossing midnight into
day 10) keeps such expectations from coming back; a scenario whose dates,
sizes or file names truly belong to one instant says so with ``clock_start``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.runner import bundled_suite, load_all, run_all, run_scenario
from harness.scenario import load_text
from harness.scenario.values import parse_instant
from harness.targets import live
from harness.targets.agentwire import Setup
from harness.targets.live import LiveTarget

DAY_1 = "2026-12-01T09:00:00Z"
DAY_9 = "2026-12-09T23:59:30Z"  # the suite's scenarios cross midnight into the 10th

DATED = """\
name: the Date qmail-inject adds
include: base-control.yaml
steps:
  - inject:
      args: [bob@example.org]
      env: {QMAILUSER: alice, QMAILHOST: example.org}
      message: "Subject: dated\\n\\nbody\\n"
  - run: idle
  - expect:
      maildir: {bob: {count: 1, headers: {Date: "%s"}}}
"""


@pytest.mark.parametrize("when", [DAY_1, DAY_9])
def test_the_bundled_suite_passes_on_any_day_of_the_month(when: str) -> None:
    scenarios, errors = load_all([bundled_suite()])
    assert errors == []
    results = run_all(scenarios, clock_start=parse_instant(when))
    failed = [f"{r.id}: {r.status}: {r.message}" for r in results if not r.ok]
    assert failed == []


def test_the_simulator_clock_starts_where_it_is_told() -> None:
    [at_day_1] = load_text(DATED % "1 Dec 2026 09:00:00 -0000", "dated.yaml")
    assert run_scenario(at_day_1, clock_start=parse_instant(DAY_1)).status == "pass"
    # without it the default instant stays 1700000000 (14 Nov 2023 22:13:20 GMT)
    [default] = load_text(DATED % "14 Nov 2023 22:13:20 -0000", "dated.yaml")
    assert run_scenario(default).status == "pass"


def test_a_scenario_pinned_to_an_instant_keeps_it_whatever_the_run_says() -> None:
    text = DATED % "14 Nov 2023 22:13:20 -0000"
    [pinned] = load_text(text.replace("include:", "clock_start: 1700000000\ninclude:"), "p.yaml")
    assert pinned.clock_start == 1_700_000_000
    assert run_scenario(pinned, clock_start=parse_instant(DAY_9)).status == "pass"
    [iso] = load_text(text.replace("include:", "clock_start: 2023-11-14T23:13:20+01:00\ninclude:"))
    assert iso.clock_start == 1_700_000_000


def test_a_clock_ahead_of_the_real_one_still_lists_pop3_mail_in_order() -> None:
    """The simulator stamps new Maildir files with the virtual time; a clock
    started in the future (ahead of every real mtime) must not leave them with
    their real mtimes, or qmail-pop3d lists them in no fixed order."""
    scenarios, errors = load_all([bundled_suite() / "pop3"])
    assert errors == [] and scenarios
    results = run_all(scenarios, clock_start=parse_instant("2100-01-01T00:00:00Z"))
    assert [f"{r.id}: {r.message}" for r in results if not r.ok] == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2026-12-01T10:00:00", "no time zone"),
        ("tomorrow", "not an instant"),
        ("", "not an instant"),
    ],
)
def test_an_instant_needs_a_zone_or_is_epoch_seconds(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_instant(text)


def test_a_bad_clock_start_in_a_scenario_is_a_located_error() -> None:
    with pytest.raises(Exception, match=r"bad.yaml:2: clock_start: .*no time zone"):
        load_text("name: x\nclock_start: 2026-12-01 10:00:00\nsteps: []\n", "bad.yaml")


def test_run_takes_clock_start_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dated.yaml"
    path.write_text(DATED % "1 Dec 2026 09:00:00 -0000")
    assert main(["run", str(path), "--clock-start", DAY_1]) == 0
    assert main(["run", str(path), "--clock-start", str(parse_instant(DAY_1))]) == 0
    assert main(["run", str(path)]) == 1  # the default instant is another day
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--clock-start", "2026-12-01"])
    assert exc.value.code == 2
    assert "no time zone" in capsys.readouterr().err


def test_the_pytest_plugin_takes_clock_start(tmp_path: Path) -> None:
    suite = tmp_path / "scenarios"
    suite.mkdir()
    (suite / "dated.yaml").write_text(DATED % "1 Dec 2026 09:00:00 -0000")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)]
    moved = subprocess.run(
        [*command, "--qmail-sim-clock-start", DAY_1],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    default = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert default.returncode == 1, default.stdout + default.stderr


class _NoAgent:
    """Stands for the agent process: the offset file is written before it starts."""

    def __init__(self, setup: Setup, use_netns: bool) -> None:
        self.offset = float(setup.offset_path.read_text())

    def call(self, verb: str, **args: Any) -> None:
        return None

    def close(self) -> None:
        pass


class _FixedClock:
    def now(self) -> float:
        return 1_800_000_000.0


def test_the_live_target_starts_its_offset_clock_at_clock_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "Agent", _NoAgent)
    monkeypatch.setattr(live, "RealClock", _FixedClock)
    monkeypatch.setattr(LiveTarget, "use_netns", lambda self: False)
    [sc] = load_text("name: t\nsteps: []\n")
    offsets: list[float] = []
    for start in (None, parse_instant(DAY_1), 1_900_000_000.0):
        target = LiveTarget()
        target.clock_start = start
        workdir = tmp_path / str(len(offsets))
        workdir.mkdir()
        target.start(sc, workdir)
        assert isinstance(target.agent, _NoAgent)
        offsets.append(target.agent.offset)
    # OffsetClock reads real time + offset: the live programs' clock starts there
    assert offsets == [0.0, parse_instant(DAY_1) - 1_800_000_000, 100_000_000.0]
