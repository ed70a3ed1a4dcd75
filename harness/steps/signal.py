"""The ``signal: alrm|hup|term`` step: what qmail-send does on that signal (qmail-send(8))."""

from __future__ import annotations

from harness.scenario.model import SignalStep
from harness.targets.base import Target


def run(step: SignalStep, target: Target) -> None:
    target.signal(step.signal)
