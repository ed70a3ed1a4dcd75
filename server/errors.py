"""Temporary versus permanent failure: the one distinction every boundary keeps.

qmail says it many ways — exit 111 or 100, report letters ``Z`` or ``D``, SMTP
4xx or 5xx, DNS soft or hard. We model it once here and map it at each edge.
The texts carry qmail's enhanced status code in its own ``(#4.3.0)`` style.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PERM = 100
EXIT_TEMP = 111
#: qmail-local and qmail-command: "success, and ignore further lines" (qmail-command(8)).
EXIT_SKIP = 99


class QmailFailure(Exception):
    """A failure with qmail's human text, e.g. ``Sorry, ... (#5.1.1)``."""

    exit_code: int = EXIT_TEMP
    letter: str = "Z"

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class TempFail(QmailFailure):
    """Try again later: exit 111, report ``Z``, SMTP 4xx, DNS_SOFT."""

    exit_code = EXIT_TEMP
    letter = "Z"


class PermFail(QmailFailure):
    """Give up: exit 100, report ``D``, SMTP 5xx, DNS_HARD."""

    exit_code = EXIT_PERM
    letter = "D"


def exit_code_for(exc: QmailFailure) -> int:
    return exc.exit_code
