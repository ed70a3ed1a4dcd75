"""From a log our live target wrote, plus what the administrator has, back to the cause and a fix.

Each bundled scenario of scenarios/reproduce/ is played on the live target
(our programs as processes, the fake DNS on loopback), and on the real
netqmail-1.06 of tests/targets.py when it is there, up to its first attempt;
its qmail-send log then goes to ``reproduce --log-file`` with the matching
inputs: the home's resolv.conf, or a ``qmail-sim capture`` made
against the same fake DNS on loopback. ``--run`` must reproduce the line,
name the right cause first and find a fix that delivers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import capture
from harness.runner import run_scenario
from harness.scenario import load_text
from harness.scenario.model import DnsSpec
from harness.targets.qmail import unusable
from tests.record.reproducing import capture_from, reproduce
from tests.targets import REFERENCE, needs_live

SUITE = Path(__file__).resolve().parents[2] / "scenarios" / "reproduce"

pytestmark = pytest.mark.live


UNUSABLE = unusable(REFERENCE)
TARGETS = [
    pytest.param("live", marks=needs_live),
    pytest.param(
        f"qmail:{REFERENCE}",
        marks=pytest.mark.skipif(UNUSABLE is not None, reason=f"no netqmail-1.06: {UNUSABLE}"),
    ),
]


def live_log(
    name: str, tmp_path: Path, target: str, *, whole: bool = False
) -> tuple[Path, Path, DnsSpec]:
    """The qmail-send log and resolv.conf of the scenario on ``target``: its first
    attempt, or with ``whole`` every step (a real qmail's clock cannot jump)."""
    data = yaml.safe_load((SUITE / name).read_text())
    if not whole:
        data["steps"] = data["steps"][:2]  # inject, run idle
    (scenario,) = load_text(yaml.safe_dump(data), SUITE / name)
    result = run_scenario(scenario, target=target, keep=True, workroot=tmp_path)
    assert result.status == "pass" and result.workdir is not None, result.message
    conf = result.workdir / "resolv.conf"  # the one the target's qmail-remote reads
    log = result.workdir / "qmail-send.log"
    if "alert: cannot start: qmail-send is already running" in log.read_text():
        # a qmail-send on DIR started outside the harness (runs of the harness
        # take turns: harness.targets.qmail holds DIR), not reproduce's trouble
        pytest.skip(f"{target}: qmail-send did not start (already running)")
    return log, conf, scenario.dns


def reproduce_log(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    log: Path,
    *,
    conf: Path | None = None,
    spec: DnsSpec | None = None,
) -> str:
    """``reproduce --log-file LOG --run``, given ``conf`` as --resolv-conf or a
    capture from the fake DNS of ``spec`` as --capture; what it said, once it
    exited 0 having reproduced the log's line."""
    argv = ["--log-file", str(log), "--run", "-o", str(tmp_path / "out.yaml")]
    if conf is not None:
        argv += ["--resolv-conf", str(conf)]
    if spec is not None:
        cap = tmp_path / "far.capture"
        cap.write_text(capture.dump(capture_from(spec)))
        argv += ["--capture", str(cap)]
    status = reproduce(*argv)
    said, err = capsys.readouterr()
    assert status == 0, said + err + log.read_text()
    assert "reproduced: the simulator logs the same line" in said
    return said


CASES = [
    # (scenario, input, cause named first, a fix that delivers)
    ("dead-nameserver.yaml", "resolv.conf", "suspect 1: dead-ns (REPRODUCES", "resolv-conf"),
    ("nonrecursive-nameserver.yaml", "capture", "suspect 1: nonrecursive (REPRO", "resolv-conf"),
    ("servfail-any.yaml", "capture", "captured: far.example ANY: SERVFAIL", "any-answered"),
    ("oversize-any.yaml", "capture", "captured: far.example ANY: answer of", "qmail-103"),
    ("cname-loop.yaml", "capture", "IN CNAME loop.far.example.", "cname-unlooped"),
    ("mx-to-nowhere.yaml", "capture", "captured: gone.far.example A: NXDOMAIN", "dns-healthy"),
    ("peer-refusing.yaml", "log", "the mail exchanger refuses connections", "peers-accept"),
    ("peer-greylisting.yaml", "log", "answers rcpt with '451 greylisted'", "peers-accept"),
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("name", "given", "cause", "fix"), CASES)
def test_a_live_log_is_reproduced_with_its_cause_first_and_a_fix(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    target: str,
    name: str,
    given: str,
    cause: str,
    fix: str,
) -> None:
    log, conf, spec = live_log(name, tmp_path, target)
    said = reproduce_log(
        tmp_path,
        capsys,
        log,
        conf=conf if given == "resolv.conf" else None,
        spec=spec if given == "capture" else None,
    )
    notes = said.split("reproduced:")[0]
    assert cause in notes or cause in (tmp_path / "out.yaml").read_text(), said
    assert f"DELIVERS     with {fix}:" in said, said


@pytest.mark.parametrize("name", ["servfail-any.yaml", "peer-greylisting.yaml"])
def test_a_whole_live_history_is_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Two deferrals at qmail's retries, then the success, from the live target's log."""
    log, _, spec = live_log(name, tmp_path, "live", whole=True)
    said = reproduce_log(tmp_path, capsys, log, spec=spec if "servfail" in name else None)
    assert "3 attempt(s), ending success" in said
    steps = yaml.safe_load((tmp_path / "out.yaml").read_text())["steps"]
    assert [s for s in steps if "advance" in s] == [{"advance": "402s"}, {"advance": "1200s"}]
    assert steps[-1]["expect"]["log"][-1] == r"~ ^delivery \d+: success: "
