"""What a program run gave back, against a step's ``exit``, ``stdout`` and ``stderr``.

Shared by ``inject`` and ``run_program``. Output is split into lines at LF
(a last line without one is shown with `` <no newline>``); each expected line
matches one actual line, in order (exact text, or ``~ regex`` searched in the
line), and there must be no more lines than expected.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.outcome import StepFailure
from harness.scenario.values import Match
from harness.targets.base import ProgramResult

NO_NEWLINE = " <no newline>"


def output_lines(data: bytes) -> list[str]:
    parts = data.decode("latin-1").split("\n")
    lines = parts[:-1]
    if parts[-1]:
        lines.append(parts[-1] + NO_NEWLINE)
    return lines


def _differs(expected: Sequence[Match], actual: list[str]) -> str | None:
    for i, want in enumerate(expected):
        if i >= len(actual):
            return f"line {i + 1}: expected {str(want)!r}, nothing more"
        got = actual[i]
        if not (want.search(got) if want.regex else want.text == got):
            return f"line {i + 1}: expected {str(want)!r}, got {got!r}"
    if len(actual) > len(expected):
        return f"line {len(expected) + 1}: unexpected {actual[len(expected)]!r}"
    return None


def check(
    program: str,
    result: ProgramResult,
    exit: int | None,
    stdout: Sequence[Match] | None,
    stderr: Sequence[Match] | None,
) -> None:
    """Raise StepFailure naming the first thing that is not as the step says."""
    err = output_lines(result.stderr)
    if exit is not None and result.exit != exit:
        raise StepFailure(
            f"{program} exited {result.exit}, expected {exit}",
            expected=[f"exit {exit}"],
            actual=[f"exit {result.exit}", *err],
        )
    for name, want, data in (("stdout", stdout, result.stdout), ("stderr", stderr, result.stderr)):
        if want is None:
            continue
        got = output_lines(data)
        problem = _differs(want, got)
        if problem is not None:
            raise StepFailure(
                f"{program}'s {name}, {problem}",
                expected=[str(w) for w in want],
                actual=got,
            )
