"""``qmail-sim run`` and ``qmail-sim dns`` from the command line, and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from tests.subprocs import stop

PASSING = (
    "name: greets\ntags: [smtp]\ncontrol: {me: mx.example.org}\nsteps:\n  - smtp:\n"
    "      transcript: |\n        S: 220 mx.example.org ESMTP\n        C: QUIT\n"
    "        S: 221 mx.example.org\n"
)
FAILING = (
    PASSING.replace("name: greets", "name: wrong greeting")
    .replace("S: 220 mx.example.org", "S: 220 other.example")
    .replace("tags: [smtp]", "tags: [bad]")
)
BROKEN = "name: broken\nsteps:\n  - smtp: {transcript: 'S: x', colour: red}\n"


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    d = tmp_path / "scenarios"
    d.mkdir()
    (d / "a.yaml").write_text(PASSING)
    (d / "b.yaml").write_text(FAILING)
    (d / "c.yaml").write_text(BROKEN)
    return d


def test_run_reports_each_scenario_and_fails_the_exit_status(
    suite: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    assert main(["run", str(suite), "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "PASS  " in out and "a.yaml::greets [smtp]" in out
    assert "FAIL  " in out and "b.yaml::wrong greeting" in out
    assert "ERROR " in out and "c.yaml:3: steps[0].smtp.colour: unknown key" in out
    assert "! 220 other.example ESMTP" in out and "| 220 mx.example.org ESMTP" in out
    assert "3 scenarios: 1 pass, 1 fail, 1 error" in out
    root = ET.parse(junit).getroot()
    suite_el = root.find("testsuite")
    assert suite_el is not None
    assert (suite_el.get("tests"), suite_el.get("failures"), suite_el.get("errors")) == (
        "3",
        "1",
        "1",
    )


def test_k_and_tag_select(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(suite / "a.yaml"), str(suite / "b.yaml"), "--tag", "smtp"]) == 0
    assert (
        main(["run", str(suite / "a.yaml"), str(suite / "b.yaml"), "-k", "greet and not wrong"])
        == 0
    )
    assert main(["run", str(suite / "a.yaml"), "-k", "(and"]) == 2
    out = capsys.readouterr().out
    assert "wrong greeting" not in out


def test_keep_leaves_the_home(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(suite / "a.yaml"), "--keep"]) == 0
    kept = [
        line.split("kept: ")[1] for line in capsys.readouterr().out.splitlines() if "kept: " in line
    ]
    assert kept and (Path(kept[0]) / "qmail" / "control" / "me").read_text() == "mx.example.org\n"
    import shutil

    shutil.rmtree(kept[0])


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["run", str(tmp_path / "nothing")]) == 2


def test_pytest_collects_scenarios_as_items(suite: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
        capture_output=True,
        text=True,
        cwd=suite.parent,
        timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "1 passed" in out and "2 failed" in out, out
    assert "broken scenario file" in out and "c.yaml:3" in out
    assert "wrong greeting" in out
    by_tag = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite), "-k", "smtp"],
        capture_output=True,
        text=True,
        cwd=suite.parent,
        timeout=120,
    )
    assert "1 passed, 2 deselected" in by_tag.stdout, by_tag.stdout


def test_dns_command_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    zone.write_text("a.example. 60 IN A 127.0.0.9\n")
    assert main(["dns", str(zone), "--listen", "192.0.2.1:53"]) == 2


def test_dns_command_loads_rules(tmp_path: Path) -> None:
    from harness.commands.dns import load_spec

    zone = tmp_path / "zone"
    zone.write_text("a.example. 60 IN A 127.0.0.9\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text("- {name: a.example, type: ANY, rcode: SERVFAIL}\n")
    spec = load_spec(zone, rules, "127.0.0.1")
    assert spec.rules[0].rcode == "SERVFAIL" and spec.servers == ("127.0.0.1",)


@pytest.mark.live
def test_dns_command_serves_a_zone_on_loopback(tmp_path: Path) -> None:
    import socket

    from dnslib import DNSRecord

    zone = tmp_path / "zone"
    zone.write_text("a.example. 60 IN A 127.0.0.9\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "dns", str(zone), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("qmail-sim dns: serving 1 names on 127.0.0.1:"), first
        port = int(first.split(":")[-1].split()[0])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(10)
            s.sendto(DNSRecord.question("a.example").pack(), ("127.0.0.1", port))
            answer = DNSRecord.parse(s.recv(4096))
        assert str(answer.rr[0].rdata) == "127.0.0.9"
        assert proc.stdout.readline().startswith("a.example A udp @127.0.0.1")
    finally:
        stop(proc)
