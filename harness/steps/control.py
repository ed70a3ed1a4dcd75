"""The ``control`` step: rewrite (or, with null, remove) control files mid-scenario."""

from __future__ import annotations

from harness.scenario.model import ControlStep
from harness.targets.base import Target


def run(step: ControlStep, target: Target) -> None:
    target.set_control(step.files)
