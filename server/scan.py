"""scan_ulong.c: the number at the start of a text, as qmail reads numbers.

qmail reads uids, pids, ports and IP address bytes with scan_ulong(): the
leading decimal digits (none is 0), into an unsigned long, so a longer run of
digits wraps at 2**64 instead of failing. It also says how many characters
it used, which callers that go on parsing need.
"""

from __future__ import annotations

#: unsigned long on the 64-bit systems qmail runs on
ULONG = 2**64
_PIECE = 1000


def scan_ulong(text: str | bytes) -> tuple[int, int]:
    """(value, digits used) of the leading ASCII digits of ``text``."""
    if isinstance(text, bytes):
        used = len(text) - len(text.lstrip(b"0123456789"))
    else:
        used = len(text) - len(text.lstrip("0123456789"))
    value = 0
    # In pieces: int() refuses a string of more than 4300 digits.
    for start in range(0, used, _PIECE):
        piece = text[start : min(used, start + _PIECE)]
        value = (value * 10 ** len(piece) + int(piece)) % ULONG
    return value, used
