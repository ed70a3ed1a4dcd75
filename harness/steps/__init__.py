"""One module per step kind; :func:`execute` picks it by the step's ``kind``.

Each module has ``run(step, target) -> None`` and raises
:class:`harness.outcome.StepFailure` when what it saw is not what the step
expects (or :class:`harness.targets.base.StepError` when it cannot act).
"""

from __future__ import annotations

import importlib

from harness.scenario.model import Step
from harness.targets.base import Target

_MODULES = {
    "smtp": "smtp",
    "pop3": "pop3",
    "qmtp": "netstrings",
    "qmqp": "netstrings",
    "inject": "inject",
    "run_program": "program",
    "run": "run",
    "advance": "advance",
    "signal": "signal",
    "control": "control",
    "expect": "expect",
}


def execute(step: Step, target: Target) -> None:
    module = importlib.import_module(f"harness.steps.{_MODULES[step.kind]}")
    module.run(step, target)
