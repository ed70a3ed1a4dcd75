"""The one error a scenario file can raise: it names the file, line and key.

Every problem found while reading a scenario (YAML syntax, an unknown key, a
wrong type, a transcript line that is neither ``S:`` nor ``C:``) becomes a
:class:`ScenarioError`, so the runner can report it and go on with the next
scenario instead of crashing.
"""

from __future__ import annotations


class ScenarioError(Exception):
    """A broken scenario: ``file:line: key: message``."""

    def __init__(self, message: str, *, file: str, line: int, key: str = "") -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
