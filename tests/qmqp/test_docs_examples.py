"""The qmtp and qmqp step examples in docs/scenarios.md run as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from harness.runner import run_scenario
from harness.scenario import load_text

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"
ROOT = Path(__file__).resolve().parents[2]


def _example() -> str:
    text = DOCS.read_text()
    section = text[text.index("### qmtp, qmqp") :]
    found = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_the_documented_steps_pass_on_the_simulator() -> None:
    scenario = (
        "name: the docs' qmtp and qmqp example\n"
        "include: base-control.yaml\n"
        "steps:\n" + textwrap.indent(_example(), "  ")
    )
    [loaded] = load_text(scenario, ROOT / "scenarios" / "qmtp" / "docs-example.yaml")
    result = run_scenario(loaded)
    assert result.status == "pass", result
