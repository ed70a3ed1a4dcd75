"""The runner and the simulator target: steps, limits, robustness, determinism."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from harness.runner import load_all, run_all, run_scenario
from harness.scenario import load_text
from harness.targets.sim import Components, SendCore, SimTarget
from server.programs import ProgramContext
from server.spawn import Channel, ChannelName, DeliveryJob

SUITE = Path(__file__).resolve().parents[2] / "scenarios" / "harness"


class FakeSend:
    """qmail-send's API with a scripted list of wake-ups; records when it ran."""

    def __init__(
        self,
        ctx: ProgramContext,
        wakeups: list[float],
        log: Callable[[str], None],
        boom: bool = False,
        stuck: bool = False,
    ) -> None:
        self.ctx = ctx
        self.wakeups = wakeups
        self.log = log
        self.ran: list[int] = []
        self.signals: list[str] = []
        self.boom = boom
        self.stuck = stuck

    def run_due(self) -> None:
        if self.boom:
            raise RuntimeError("scheduler bug")
        now = self.ctx.runtime.now()
        self.ran.append(now)
        self.log(f"pass at {now}")
        while self.wakeups and self.wakeups[0] <= now and not self.stuck:
            self.wakeups.pop(0)

    def next_wakeup(self) -> float | None:
        return self.wakeups[0] if self.wakeups else None

    def alarm(self) -> None:
        self.signals.append("alrm")

    def hangup(self) -> None:
        self.signals.append("hup")

    def terminate(self) -> None:
        self.signals.append("term")


class NullChannel:
    def deliver(self, job: DeliveryJob) -> bytes:
        return b"Kok"


def fake_target(offsets: list[float], **kw: bool) -> tuple[SimTarget, list[FakeSend]]:
    made: list[FakeSend] = []

    def send(
        ctx: ProgramContext, channels: Mapping[ChannelName, Channel], log: Callable[[str], None]
    ) -> SendCore:
        start = ctx.runtime.now()
        core = FakeSend(ctx, [start + o for o in offsets], log, **kw)
        made.append(core)
        return core

    comps = Components(
        send=send,
        local=lambda ctx: NullChannel(),
        remote=lambda ctx, dns, peers, resolv: NullChannel(),
    )
    return SimTarget(comps), made


def scenario(steps: str, extra: str = "") -> str:
    return f"name: t\n{extra}steps:\n{steps}"


def test_advance_runs_every_wakeup_on_the_way_then_the_target() -> None:
    [sc] = load_text(
        scenario(
            "  - run: idle\n  - advance: 1h\n  - signal: alrm\n"
            "  - signal: hup\n  - expect: {log: [pass at, '~ \\d+']}\n"
        )
    )
    target, made = fake_target([100, 400, 5000])
    result = run_scenario(sc, target=target)
    assert result.status == "pass", result
    start = made[0].ran[0]
    assert [t - start for t in made[0].ran] == [0, 100, 400, 3600]
    assert made[0].signals == ["alrm", "hup"]


def test_limits_stop_a_scenario_without_stopping_the_runner() -> None:
    [virtual] = load_text(scenario("  - advance: 2d\n", "limits: {virtual: 1d}\n"))
    target, _ = fake_target([])
    result = run_scenario(virtual, target=target)
    assert result.status == "error" and "limits.virtual" in result.message
    [busy] = load_text(scenario("  - run: idle\n", "limits: {passes: 5}\n"))
    target, _ = fake_target([0], stuck=True)
    result = run_scenario(busy, target=target)
    assert result.status == "error" and "5 queue passes" in result.message
    [wall] = load_text(scenario("  - run: idle\n", "limits: {wall: 0}\n"))
    result = run_scenario(wall, target=fake_target([])[0])
    assert result.status == "error" and "wall-clock" in result.message


def test_a_bug_in_a_server_module_is_an_error_result_with_a_trace() -> None:
    [sc] = load_text(scenario("  - run: idle\n"))
    target, _ = fake_target([], boom=True)
    result = run_scenario(sc, target=target)
    assert result.status == "error" and result.message == "RuntimeError: scheduler bug"
    assert result.step == "step 1 (run, line 3)"
    assert any("scheduler bug" in line for line in result.transcript)


def test_xfail_marks_an_expected_failure() -> None:
    [sc] = load_text(scenario("  - expect: {log: [never]}\n", "xfail: known bug\n"))
    result = run_scenario(sc, target=fake_target([])[0])
    assert result.status == "xfail" and result.ok


def test_a_broken_file_is_one_error_and_the_others_still_run(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: fine\nsteps: []\n")
    (tmp_path / "b.yaml").write_text("name: broken\nsteps:\n  - smtp: {nope: 1}\n")
    scenarios, errors = load_all([tmp_path])
    assert [s.name for s in scenarios] == ["fine"]
    assert len(errors) == 1 and errors[0].status == "error"
    assert "b.yaml:3: steps[0].smtp.nope: unknown key" in errors[0].message
    assert [r.status for r in run_all(scenarios)] == ["pass"]


def test_expect_failures_show_expected_and_actual(tmp_path: Path) -> None:
    [sc] = load_text(
        scenario(
            "  - smtp:\n      transcript: |\n        S: 220 wrong.example ESMTP\n"
            "        C: QUIT\n        S: 221 wrong.example\n"
            "  - expect: {queue: {messages: 3}, maildir: {bob: 1}}\n",
            "control: {me: mx.example.org}\nusers: {bob: {}}\n",
        )
    )
    result = run_scenario(sc)
    assert result.status == "fail" and result.step == "step 1 (smtp, line 5)"
    assert result.actual == ["220 mx.example.org ESMTP", "221 mx.example.org"]
    assert result.same == [False, False]
    assert (
        "S: 220 mx.example.org ESMTP    <-- expected 220 wrong.example ESMTP" in result.transcript
    )


def _snapshot(workdir: Path, log: list[str]) -> tuple[list[str], list[bytes], list[str]]:
    names = sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("Maildir/*/*"))
    bodies = [p.read_bytes() for p in sorted(workdir.rglob("Maildir/*/*"))]
    return names, bodies, list(log)


def test_the_same_seed_gives_the_same_bytes() -> None:
    [sc] = load_text(
        (SUITE / "smtp-local-delivery.yaml").read_text(), SUITE / "smtp-local-delivery.yaml"
    )
    snaps = []
    for _ in range(2):
        target = SimTarget()
        result = run_scenario(sc, target=target, keep=True)
        assert result.status == "pass", result
        assert result.workdir is not None
        snaps.append(_snapshot(result.workdir, target.log))
        import shutil

        shutil.rmtree(result.workdir)
    assert snaps[0] == snaps[1]
    assert snaps[0][0] == ["homes/alice/Maildir/new/1700000000.1001.sim.example"]
    assert "new msg 100001" in snaps[0][2]  # the simulated inode number


@pytest.mark.parametrize("path", sorted(SUITE.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_example_scenarios(path: Path) -> None:
    scenarios, errors = load_all([path])
    assert not errors
    for sc in scenarios:
        result = run_scenario(sc)
        if result.status != "pass" and "not implemented in qmail-sim yet" in str(result.actual):
            pytest.skip(f"{sc.name}: a program it needs is not built yet")
        assert result.status == "pass", (result.step, result.message, result.actual)


def test_a_step_that_hangs_is_interrupted_by_the_wall_clock_limit() -> None:
    [sc] = load_text(scenario("  - run: idle\n", "limits: {wall: 0.05}\n"))
    target, _ = fake_target([])

    def spin() -> None:  # a delivery that never returns
        while True:
            pass

    original = target.components.send

    def send(
        ctx: ProgramContext, channels: Mapping[ChannelName, Channel], log: Callable[[str], None]
    ) -> SendCore:
        core = original(ctx, channels, log)
        core.run_due = spin  # type: ignore[method-assign]
        return core

    target.components.send = send
    result = run_scenario(sc, target=target)
    assert result.status == "error" and "wall-clock limit" in result.message


def test_a_failed_log_check_shows_the_whole_log() -> None:
    [sc] = load_text(
        scenario("  - run: idle\n  - expect: {log: [never], dns_queries: [x.example]}\n")
    )
    result = run_scenario(sc, target=fake_target([])[0])
    assert result.status == "fail"
    assert result.transcript[:2] == ["qmail-send log so far:", "  pass at 1700000000"]
    assert "DNS queries so far:" in result.transcript


PROGRAM_SCENARIO = """\
name: a program delivery as the user
users:
  bob: {dotqmail: {"": ["|except sh -c 'exit 100'"]}}
control: {me: example.org, locals: example.org}
steps:
  - inject: {args: [bob@example.org], message: "Subject: x\\n\\nx\\n"}
  - run: idle
  - expect: {log: ["delivery 1: success: did_0+0+1/"]}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="deliveries run as the user only when run as root")
def test_a_failure_says_when_users_cannot_run_our_programs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as root from a closed checkout, `|except` defers with sh's
    "Permission denied"; the failure says why, and what to open."""
    from harness.targets import simhome

    [scenario] = load_text(PROGRAM_SCENARIO, "closed.yaml")
    assert run_scenario(scenario).status == "pass"  # where it can: as expected
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    (closed / "python").symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(closed / "python"))
    simhome.programs_closed_to.cache_clear()
    try:
        result = run_scenario(scenario)
    finally:
        simhome.programs_closed_to.cache_clear()
    assert result.status == "fail"
    assert "note: run as root, .qmail programs run as their user" in result.message
    assert "chmod go+x" in result.message
