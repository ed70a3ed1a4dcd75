"""qmail-send's log texts and logsafe (qsutil.c)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.send import log as L


def test_logsafe_table() -> None:
    assert L.logsafe(b"a b\nc%d\x01\x7f\xff~!") == "a_b/c_d___~!"
    assert L.logsafe("CNAME lookup failed temporarily. (#4.4.3)\n") == (
        "CNAME_lookup_failed_temporarily._(#4.4.3)/"
    )


@given(st.binary())
def test_logsafe_is_one_printable_token(data: bytes) -> None:
    out = L.logsafe(data)
    assert len(out) == len(data)
    assert all(33 <= ord(ch) <= 126 and ch != "%" for ch in out)


def test_lines_byte_exact() -> None:
    assert L.new_msg(42) == "new msg 42"
    assert L.info_msg(42, 300, "a b@x", 77, 0) == "info msg 42: bytes 300 from <a_b@x> qp 77 uid 0"
    assert L.starting_delivery(3, 42, "remote", "x@y") == (
        "starting delivery 3: msg 42 to remote x@y"
    )
    assert L.delivery_success(3, b"did it\n") == "delivery 3: success: did_it/"
    assert L.delivery_deferral(3, b"x") == "delivery 3: deferral: x"
    assert L.delivery_failure(3, b"x") == "delivery 3: failure: x"
    assert L.status({"local": 1, "remote": 2}, {"local": 10, "remote": 20}, False) == (
        "status: local 1/10 remote 2/20"
    )
    assert L.status({"local": 0, "remote": 0}, {"local": 10, "remote": 20}, True).endswith(
        " exitasap"
    )
    assert L.bounce_msg(42, 99) == "bounce msg 42 qp 99"
    assert L.end_msg(42) == "end msg 42"
    assert L.triple_bounce("bounce/42") == "triple bounce: discarding bounce/42"
