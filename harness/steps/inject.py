"""The ``inject`` step: qmail-inject with args, environment and a message on stdin."""

from __future__ import annotations

from harness.scenario.model import InjectStep
from harness.steps import output
from harness.targets.base import Target


def run(step: InjectStep, target: Target) -> None:
    result = target.inject(step)
    output.check("qmail-inject", result, step.exit, step.stdout, step.stderr)
