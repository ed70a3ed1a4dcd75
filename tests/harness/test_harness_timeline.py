"""``qmail-sim show``: message timelines rebuilt from qmail-send's log lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.timeline import as_html, as_text, build

LOG = [
    (0.0, "new msg 17"),
    (0.0, "info msg 17: bytes 205 from <alice@example.org> qp 1000 uid 1000"),
    (0.0, "starting delivery 1: msg 17 to remote erin@far.example"),
    (0.0, "status: local 0/10 remote 1/20"),
    (0.0, "delivery 1: deferral: greylisted/"),
    (401.0, "starting delivery 2: msg 17 to remote erin@far.example"),
    (401.0, "delivery 2: success: 127.0.2.20_accepted_message./"),
    (401.0, "end msg 17"),
]


def test_log_lines_become_events_per_message() -> None:
    [msg] = build(LOG)
    assert (msg.id, msg.sender, msg.size) == ("17", "alice@example.org", "205")
    assert [(e.time, e.kind) for e in msg.events] == [
        (0.0, "queued"),
        (0.0, "deferral"),
        (401.0, "success"),
        (401.0, "done"),
    ]
    text = as_text([msg])
    assert text[0] == "msg 17 from <alice@example.org>, 205 bytes"
    assert "+6m41s  success   remote erin@far.example: 127.0.2.20_accepted_message./" in text[3]
    page = as_html("t", [msg])
    assert page.count("<circle") == 4 and "&lt;alice@example.org&gt;" in page


def test_show_runs_a_scenario_and_draws_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = Path(__file__).resolve().parents[2] / "scenarios" / "harness"
    out_html = tmp_path / "t.html"
    code = main(["show", str(suite / "smtp-local-delivery.yaml"), "--html", str(out_html)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "queued" in out and "success   local alice@example.org: did_1+0+0/" in out
    assert "<svg" in out_html.read_text()
