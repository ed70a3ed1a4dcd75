"""The ``pop3`` step: one POP3 session replayed against the target (see session.py)."""

from __future__ import annotations

from harness.scenario.model import SessionStep
from harness.steps.session import replay
from harness.targets.base import Target


def run(step: SessionStep, target: Target) -> None:
    replay(step, target)
