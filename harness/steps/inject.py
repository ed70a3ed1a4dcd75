"""The ``inject`` step: qmail-inject with args, environment and a message on stdin."""

from __future__ import annotations

from harness.outcome import StepFailure
from harness.scenario.model import InjectStep
from harness.targets.base import Target


def run(step: InjectStep, target: Target) -> None:
    result = target.inject(step)
    if step.exit is not None and result.exit != step.exit:
        err = result.stderr.decode("utf-8", "replace").strip()
        raise StepFailure(
            f"qmail-inject exited {result.exit}, expected {step.exit}",
            expected=[f"exit {step.exit}"],
            actual=[f"exit {result.exit}", *err.splitlines()],
        )
