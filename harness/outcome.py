"""What running a scenario gives: a result per scenario, a failure per broken step.

A :class:`StepFailure` carries what a report needs to explain itself: the
step, the expected and actual lines (shown side by side) and, for sessions,
the transcript as it really went.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Status = Literal["pass", "fail", "error", "xfail", "xpass"]


class StepFailure(Exception):
    def __init__(
        self,
        message: str,
        *,
        expected: list[str] | None = None,
        actual: list[str] | None = None,
        transcript: list[str] | None = None,
        same: list[bool] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected or []
        self.actual = actual or []
        self.transcript = transcript or []
        self.same = same


@dataclass(kw_only=True)
class Result:
    """The outcome of one scenario (or of a file that did not load)."""

    id: str
    name: str
    file: str
    status: Status
    seconds: float = 0.0
    message: str = ""
    step: str = ""  # e.g. "step 3 (smtp, line 14)"
    expected: list[str] = field(default_factory=list)
    actual: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    #: per side-by-side row: did it match (regexes make "equal text" the wrong test)
    same: list[bool] | None = None
    workdir: Path | None = None
    tags: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "xfail")
