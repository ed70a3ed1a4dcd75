"""quote.c: an RFC 821 local part in double quotes only when it needs them.

qmail-inject (the -f sender and argument recipients), qmail-local
(``RPLINE``) and qmail-remote (each ``RCPT TO``) all quote through quote.c.
A local part needs quotes when it is empty, holds a character outside
quote.c's ``ok[]`` table (controls, space, 8-bit, ``"(),:;<>@[\\]``), or
starts or ends with a dot or has two dots in a row; inside the quotes CR,
LF, ``"`` and ``\\`` get a backslash. :func:`quote2` quotes only what comes
before the last ``@``.

The functions work on text; the ``_bytes`` forms take and give bytes (each
byte one character, as latin-1 maps them, so nothing is lost).
"""

from __future__ import annotations

from typing import Final

#: quote.c's ok[] table: the characters a local part may hold unquoted.
OK: Final = frozenset(
    "!#$%&'*+-./0123456789=?ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz{|}~"
)


def quote_need(box: str) -> bool:
    if not box or any(ch not in OK for ch in box):
        return True
    return box.startswith(".") or box.endswith(".") or ".." in box


def quote(box: str) -> str:
    """quote(): ``box`` as it is when it can be, else in double quotes."""
    if not quote_need(box):
        return box
    escaped = "".join("\\" + ch if ch in '\r\n"\\' else ch for ch in box)
    return f'"{escaped}"'


def quote2(address: str) -> str:
    """quote2(): quote the part before the last ``@``; ``""`` stays ``""``."""
    if not address:
        return ""
    at = address.rfind("@")
    if at < 0:
        return quote(address)
    return quote(address[:at]) + address[at:]


def quote_need_bytes(box: bytes) -> bool:
    return quote_need(box.decode("latin-1"))


def quote_bytes(box: bytes) -> bytes:
    return quote(box.decode("latin-1")).encode("latin-1")


def quote2_bytes(address: bytes) -> bytes:
    return quote2(address.decode("latin-1")).encode("latin-1")
