"""server.quote: quote.c's quoting, shared by qmail-inject, qmail-local and qmail-remote."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from server.quote import quote, quote2, quote2_bytes, quote_bytes


def test_quote_c_cases() -> None:
    assert quote("joe.user+x") == "joe.user+x"
    assert quote("") == '""' and quote(".a") == '".a"' and quote("a.") == '"a."'
    assert quote("a..b") == '"a..b"' and quote("a b") == '"a b"'
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert quote2("a b@c d") == '"a b"@c d' and quote2("") == ""
    assert quote_bytes(b"caf\xe9") == b'"caf\xe9"'


@given(st.binary(max_size=30))
def test_quoted_text_unescapes_to_the_input(box: bytes) -> None:
    out = quote_bytes(box)
    if out != box:
        assert out[:1] == out[-1:] == b'"'
        assert re.sub(rb"\\(.)", rb"\1", out[1:-1], flags=re.S) == box
    assert quote2_bytes(box + b"@h") == out + b"@h"
