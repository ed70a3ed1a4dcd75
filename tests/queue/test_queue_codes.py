"""qmail_close()'s texts for every exit code (qmail.c), pinned byte for byte."""

from __future__ import annotations

import pytest

from server.queue import codes
from server.queue.codes import close_text, status_text

PINNED = {
    0: "",
    11: "Denvelope address too long for qq (#5.1.3)",
    115: "Denvelope address too long for qq (#5.1.3)",
    31: "Dmail server permanently rejected message (#5.3.0)",
    51: "Zqq out of memory (#4.3.0)",
    52: "Zqq timeout (#4.3.0)",
    53: "Zqq write error or disk full (#4.3.0)",
    54: "Zqq read error (#4.3.0)",
    55: "Zqq unable to read configuration (#4.3.0)",
    56: "Zqq trouble making network connection (#4.3.0)",
    61: "Zqq trouble in home directory (#4.3.0)",
    62: "Zqq trouble creating files in queue (#4.3.0)",
    63: "Zqq trouble creating files in queue (#4.3.0)",
    64: "Zqq trouble creating files in queue (#4.3.0)",
    65: "Zqq trouble creating files in queue (#4.3.0)",
    66: "Zqq trouble creating files in queue (#4.3.0)",
    71: "Zmail server temporarily rejected message (#4.3.0)",
    72: "Zconnection to mail server timed out (#4.4.1)",
    73: "Zconnection to mail server rejected (#4.4.1)",
    74: "Zcommunication with mail server failed (#4.4.2)",
    81: "Zqq internal bug (#4.3.0)",
    91: "Zqq internal bug (#4.3.0)",
    120: "Zunable to exec qq (#4.3.0)",
}


@pytest.mark.parametrize(("code", "text"), sorted(PINNED.items()))
def test_each_documented_code(code: int, text: str) -> None:
    assert close_text(code) == text


@pytest.mark.parametrize("code", [12, 20, 30, 32, 40])
def test_other_codes_from_11_to_40_are_permanent(code: int) -> None:
    assert close_text(code) == "Dqq permanent problem (#5.3.0)"
    assert codes.is_permanent(close_text(code))


@pytest.mark.parametrize("code", [1, 10, 41, 50, 57, 99, 100, 111, 255])
def test_everything_else_is_temporary(code: int) -> None:
    assert close_text(code) == "Zqq temporary problem (#4.3.0)"


def test_exit_0_after_a_failed_write_is_a_read_error() -> None:
    # qmail.c: "case 0: if (!qq->flagerr) return ""; /* fall through */"
    assert close_text(0, write_failed=True) == "Zqq read error (#4.3.0)"
    assert close_text(53, write_failed=True) == "Zqq write error or disk full (#4.3.0)"


def test_killed_by_a_signal_is_a_crash() -> None:
    assert status_text(-9) == "Zqq crashed (#4.3.0)"
    assert status_text(0) == ""


def test_every_text_is_temporary_or_permanent() -> None:
    for code in range(1, 256):
        text = close_text(code)
        assert text[0] in "ZD"
        assert text.endswith(")")
