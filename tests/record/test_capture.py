"""qmail-sim capture against our fake DNS on loopback, and reproduce --capture from its file."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from harness import capture
from harness.commands.reproduce import run
from harness.scenario.model import DnsRule, DnsSpec
from tests.record.maillogs import CNAME, story, write
from tests.record.reproducing import HOST, capture_from, reproduce_args

ZONE = "far.example. 300 IN MX 10 mx.far.example.\nmx.far.example. 300 IN A 127.0.2.10\n"

pytestmark = pytest.mark.live


def captured(*rules: DnsRule) -> dict[str, Any]:
    spec = DnsSpec(zone=ZONE, servers=(HOST,), rules=rules)
    return capture_from(spec, "options timeout:1 attempts:1\n")


def asked(data: dict[str, Any]) -> list[str]:
    return [f"{e['name']} {e['type']} {e['transport']} {e['outcome']}" for e in data["exchanges"]]


def test_a_healthy_domain_is_asked_any_then_mx_then_a() -> None:
    data = captured()
    assert asked(data) == [
        "far.example ANY udp NOERROR",
        "far.example MX udp NOERROR",
        "mx.far.example A udp NOERROR",
    ]
    assert data["dns_c"] == ["ok", "ok", "addresses: 127.0.2.10"]
    assert capture.evidence(data) is None


def test_an_oversize_any_answer_is_read_whole_over_tcp_and_defers() -> None:
    data = captured(DnsRule(name="far.example", type="ANY", pad_to=700))
    assert asked(data)[:2] == ["far.example ANY udp NOERROR", "far.example ANY tcp NOERROR"]
    assert data["exchanges"][0]["tc"] and data["exchanges"][1]["size"] >= 700
    assert data["dns_c"][0].startswith("CNAME lookup: DNS_SOFT")
    (any_answer, *_) = capture.dig_answers(data)
    assert any_answer.oversize and any_answer.msg_size is not None


def test_a_server_refusing_recursion_is_evidence_against_resolv_conf() -> None:
    data = captured(DnsRule(name="far.example", rcode="REFUSED"))
    assert asked(data)[0] == "far.example ANY udp REFUSED"
    assert capture.evidence(data) == "nonrecursive"


def test_nothing_listening_is_a_refused_connection() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]  # closed again below: nobody listens there
    data = capture.capture("far.example", f"nameserver {HOST}:{port}\n")
    assert {e["outcome"] for e in data["exchanges"]} == {"refused"}
    assert data["dns_c"] == ["CNAME lookup: DNS_SOFT (h_errno 2)"]
    assert capture.evidence(data) == "refused-ns"


def test_evidence_of_a_dead_server_is_all_timeouts() -> None:
    data = {"exchanges": [{"name": "far.example", "type": "ANY", "outcome": "timeout"}] * 2}
    assert capture.evidence(data) == "dead-ns"


def reproduce(tmp_path: Path, data: dict[str, Any], took: float) -> tuple[int, list[str]]:
    cap = tmp_path / "far.capture"
    cap.write_text(capture.dump(data))
    log = write(tmp_path / "current", story(7, "bob@far.example", [("deferral", CNAME, took)]),
                "splogger")  # fmt: skip
    return run(reproduce_args("--log-file", str(log), "--capture", str(cap), "--run")), []


@pytest.mark.parametrize(
    ("rule", "first", "fix"),
    [
        (DnsRule(name="far.example", rcode="REFUSED"), "nonrecursive", "resolv-conf"),
        (DnsRule(name="far.example", type="ANY", rcode="SERVFAIL"), None, "any-answered"),
        (DnsRule(name="far.example", type="ANY", pad_to=700), None, "qmail-103"),
    ],
)
def test_reproduce_from_a_capture_names_the_cause_and_a_fix(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rule: DnsRule,
    first: str | None,
    fix: str,
) -> None:
    status, _ = reproduce(tmp_path, captured(rule), 0.01)
    said = capsys.readouterr().out
    assert status == 0, said
    assert "reproduced: the simulator logs the same line" in said
    if first is not None:
        top = next(line for line in said.splitlines() if "suspect 1:" in line)
        assert f"suspect 1: {first} (REPRODUCES" in top and "the capture shows it" in top
    else:  # the capture itself shows the failure: no guessing
        assert "suspect 1:" not in said
    assert f"DELIVERS     with {fix}:" in said


def test_a_refusing_name_server_is_named_first_from_the_capture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    status, _ = reproduce(
        tmp_path, capture.capture("far.example", f"nameserver {HOST}:{port}\n"), 0.01
    )
    said = capsys.readouterr().out
    assert status == 0, said
    top = next(line for line in said.splitlines() if "suspect 1:" in line)
    assert "refused-ns (REPRODUCES, timing fits)" in top and "the capture shows it" in top
    assert "DELIVERS     with resolv-conf:" in said
