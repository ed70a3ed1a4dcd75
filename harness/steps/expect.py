"""The ``expect`` step: check the target's world (see harness/expect.py)."""

from __future__ import annotations

from harness.expect import check
from harness.scenario.model import ExpectStep
from harness.targets.base import Target


def run(step: ExpectStep, target: Target) -> None:
    check(step, target.observe())
