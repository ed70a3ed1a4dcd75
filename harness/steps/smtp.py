"""The ``smtp`` step: one SMTP session replayed against the target (see session.py)."""

from __future__ import annotations

from harness.scenario.model import SessionStep
from harness.steps.session import replay
from harness.targets.base import Target


def run(step: SessionStep, target: Target) -> None:
    replay(step, target)
