"""The ``run_program`` step: one of the home's programs (qmail-newmrh, qmail-newu,
qmail-tcpok, …) with its arguments, environment and stdin, in the scenario's
work directory; ``{workdir}`` in an argument or env value stands for it."""

from __future__ import annotations

from harness.scenario.model import ProgramStep
from harness.steps import output
from harness.targets.base import Target


def run(step: ProgramStep, target: Target) -> None:
    result = target.program(step)
    output.check(step.args[0], result, step.exit, step.stdout, step.stderr)
