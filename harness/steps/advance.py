"""The ``advance: 8d`` step: move the clock, running every retry that falls due on the way."""

from __future__ import annotations

from harness.scenario.model import AdvanceStep
from harness.targets.base import Target


def run(step: AdvanceStep, target: Target) -> None:
    target.advance(step.seconds)
