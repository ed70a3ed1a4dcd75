"""server.scan: scan_ulong.c's value and length, text or bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.scan import ULONG, scan_ulong


def test_scan_ulong_cases() -> None:
    assert scan_ulong("") == (0, 0)
    assert scan_ulong("x12") == (0, 0)
    assert scan_ulong("0025:x") == (25, 4)
    assert scan_ulong(b"18446744073709551617.") == (1, 20)  # wraps like unsigned long
    assert scan_ulong("9" * 9000) == ((10**9000 - 1) % ULONG, 9000)


@given(st.text(alphabet="0123456789", max_size=40), st.text(max_size=5))
def test_scan_ulong_reads_the_leading_digits(digits: str, rest: str) -> None:
    text = digits + ("x" + rest if rest else "")
    value, used = scan_ulong(text)
    assert used == len(digits)
    assert value == (int(digits) % ULONG if digits else 0)
    assert scan_ulong(text.encode()) == (value, used)
