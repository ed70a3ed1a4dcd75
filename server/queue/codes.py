"""qmail-queue's exit codes and what a caller makes of them.

The codes are qmail-queue(8)'s: 0 queued; 11-40 permanent; everything else
temporary. :func:`close_text` is qmail.c's ``qmail_close()``: the text a
queue client (qmail-smtpd, qmail-inject, qmail-local, qmail-send) reports for
an exit status, first letter ``Z`` (temporary) or ``D`` (permanent), or ``""``
when the message was queued. The texts are qmail.c's, byte for byte.
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
ADDRESS_TOO_LONG: Final = 11
#: qmail.c maps 115 like 11 ("compatibility").
ADDRESS_TOO_LONG_COMPAT: Final = 115
PERM_REJECTED: Final = 31
NO_MEMORY: Final = 51
TIMEOUT: Final = 52
WRITE_ERROR: Final = 53
READ_ERROR: Final = 54
NO_CONFIG: Final = 55
NETWORK: Final = 56
HOME_TROUBLE: Final = 61
QUEUE_DIR_TROUBLE: Final = 62
PID_TROUBLE: Final = 63
MESS_TROUBLE: Final = 64
INTD_TROUBLE: Final = 65
TODO_TROUBLE: Final = 66
TEMP_REJECTED: Final = 71
TIMED_OUT: Final = 72
CONN_REJECTED: Final = 73
COMM_FAILED: Final = 74
BUG: Final = 81
ENVELOPE_FORMAT: Final = 91
#: qmail.c's child exits 120 when it cannot exec the queue program.
CANNOT_EXEC: Final = 120

# qmail.c, qmail_close(): one text per exit code.
_TEXTS: Final[dict[int, str]] = {
    ADDRESS_TOO_LONG: "Denvelope address too long for qq (#5.1.3)",
    ADDRESS_TOO_LONG_COMPAT: "Denvelope address too long for qq (#5.1.3)",
    PERM_REJECTED: "Dmail server permanently rejected message (#5.3.0)",
    NO_MEMORY: "Zqq out of memory (#4.3.0)",
    TIMEOUT: "Zqq timeout (#4.3.0)",
    WRITE_ERROR: "Zqq write error or disk full (#4.3.0)",
    READ_ERROR: "Zqq read error (#4.3.0)",
    NO_CONFIG: "Zqq unable to read configuration (#4.3.0)",
    NETWORK: "Zqq trouble making network connection (#4.3.0)",
    HOME_TROUBLE: "Zqq trouble in home directory (#4.3.0)",
    QUEUE_DIR_TROUBLE: "Zqq trouble creating files in queue (#4.3.0)",
    PID_TROUBLE: "Zqq trouble creating files in queue (#4.3.0)",
    MESS_TROUBLE: "Zqq trouble creating files in queue (#4.3.0)",
    INTD_TROUBLE: "Zqq trouble creating files in queue (#4.3.0)",
    TODO_TROUBLE: "Zqq trouble creating files in queue (#4.3.0)",
    TEMP_REJECTED: "Zmail server temporarily rejected message (#4.3.0)",
    TIMED_OUT: "Zconnection to mail server timed out (#4.4.1)",
    CONN_REJECTED: "Zconnection to mail server rejected (#4.4.1)",
    COMM_FAILED: "Zcommunication with mail server failed (#4.4.2)",
    ENVELOPE_FORMAT: "Zqq internal bug (#4.3.0)",
    BUG: "Zqq internal bug (#4.3.0)",
    CANNOT_EXEC: "Zunable to exec qq (#4.3.0)",
}

PERM_PROBLEM: Final = "Dqq permanent problem (#5.3.0)"
TEMP_PROBLEM: Final = "Zqq temporary problem (#4.3.0)"
CRASHED: Final = "Zqq crashed (#4.3.0)"
WAITPID_SURPRISE: Final = "Zqq waitpid surprise (#4.3.0)"


def close_text(exitcode: int, *, write_failed: bool = False) -> str:
    """qmail_close()'s answer for an exit code; ``""`` means queued.

    ``write_failed`` is qmail.c's ``flagerr``: the client could not write the
    whole message or envelope. A queue program that still exits 0 then gets
    "read error", as in qmail.c, where case 0 falls through to case 54.
    """
    if exitcode == OK:
        return _TEXTS[READ_ERROR] if write_failed else ""
    text = _TEXTS.get(exitcode)
    if text is not None:
        return text
    if 11 <= exitcode <= 40:
        return PERM_PROBLEM
    return TEMP_PROBLEM


def status_text(returncode: int, *, write_failed: bool = False) -> str:
    """Like :func:`close_text` for a ``subprocess`` return code (negative = signal)."""
    if returncode < 0:
        return CRASHED
    return close_text(returncode, write_failed=write_failed)


def is_permanent(text: str) -> bool:
    return text.startswith("D")
