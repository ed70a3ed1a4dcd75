"""The one error a scenario file can raise: it names the file, line and key.

Every problem found while reading a scenario (YAML syntax, an unknown key, a
wrong type, a transcript line that is neither ``S:`` nor ``C:``) becomes a
:class:`ScenarioError`, so the runner can report it and go on with the next
scenario instead of crashing. A file with several mistakes raises one
:class:`ScenarioErrors` holding them all, first line first, so a user fixes
them in one go; it is a ScenarioError whose fields are those of the first.
"""

from __future__ import annotations

from collections.abc import Sequence


class ScenarioError(Exception):
    """A broken scenario: ``file:line: key: message``."""

    def __init__(self, message: str, *, file: str, line: int, key: str = "") -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(str(self))

    @property
    def errors(self) -> tuple[ScenarioError, ...]:
        """Every error this one stands for (itself, for a single error)."""
        return (self,)

    def located(self) -> str:
        """``key: message`` without the file and line, for a report that shows them apart."""
        return f"{self.key}: {self.message}" if self.key else self.message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.located()}"


class ScenarioErrors(ScenarioError):
    """Several errors of one file, sorted by line; ``str`` gives one line each."""

    def __init__(self, errors: Sequence[ScenarioError]) -> None:
        flat = [e for err in errors for e in err.errors]
        if len({e.file for e in flat}) == 1:  # else as found: a fixture's beside its includer's
            flat.sort(key=lambda e: e.line)
        self.all = tuple(flat)
        first = self.all[0]
        super().__init__(first.message, file=first.file, line=first.line, key=first.key)

    @property
    def errors(self) -> tuple[ScenarioError, ...]:
        return self.all

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.all)


def raise_all(errors: Sequence[ScenarioError]) -> None:
    """Raise nothing, the one error, or a ScenarioErrors holding them all."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ScenarioErrors(errors)
