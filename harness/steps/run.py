"""The ``run: idle`` step: let qmail-send do everything due now, without moving the clock."""

from __future__ import annotations

from harness.scenario.model import RunStep
from harness.targets.base import Target


def run(step: RunStep, target: Target) -> None:
    target.run_until_idle()
