"""Splitting a message into header fields and body, and the fields qmail adds.

:func:`split` is headerbody.c: lines up to LF (a last line without one gets
one); a line starting with space or tab continues the field before it; a
first line "From " becomes the field ``MBOX-Line: From ...``; an empty line
ends the header, and so does the first line that is not a valid field, in
which case an empty line is put before it. Input that ends inside the header
has no body at all, not even the empty line.

:func:`known`, :func:`valid` and :func:`skipname` are hfield.c; :func:`date_field` and
:func:`msgid_field` are newfield.c's ``Date:`` and ``Message-ID:`` lines.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from server.date822 import home_date


class H(enum.IntEnum):
    """hfield.h's header types, in hfield.c's order (0: unknown)."""

    UNKNOWN = 0
    SENDER = 1
    FROM = 2
    REPLYTO = 3
    TO = 4
    CC = 5
    BCC = 6
    DATE = 7
    MESSAGEID = 8
    SUBJECT = 9
    R_SENDER = 10
    R_FROM = 11
    R_REPLYTO = 12
    R_TO = 13
    R_CC = 14
    R_BCC = 15
    R_DATE = 16
    R_MESSAGEID = 17
    RETURNRECEIPTTO = 18
    ERRORSTO = 19
    APPARENTLYTO = 20
    RECEIVED = 21
    RETURNPATH = 22
    DELIVEREDTO = 23
    CONTENTLENGTH = 24
    CONTENTTYPE = 25
    CONTENTTRANSFERENCODING = 26
    NOTICEREQUESTEDUPONDELIVERYTO = 27
    MAILFOLLOWUPTO = 28


#: hfield.c's hname[], lower case, by type.
NAMES: dict[H, bytes] = {
    H.SENDER: b"sender",
    H.FROM: b"from",
    H.REPLYTO: b"reply-to",
    H.TO: b"to",
    H.CC: b"cc",
    H.BCC: b"bcc",
    H.DATE: b"date",
    H.MESSAGEID: b"message-id",
    H.SUBJECT: b"subject",
    H.R_SENDER: b"resent-sender",
    H.R_FROM: b"resent-from",
    H.R_REPLYTO: b"resent-reply-to",
    H.R_TO: b"resent-to",
    H.R_CC: b"resent-cc",
    H.R_BCC: b"resent-bcc",
    H.R_DATE: b"resent-date",
    H.R_MESSAGEID: b"resent-message-id",
    H.RETURNRECEIPTTO: b"return-receipt-to",
    H.ERRORSTO: b"errors-to",
    H.APPARENTLYTO: b"apparently-to",
    H.RECEIVED: b"received",
    H.RETURNPATH: b"return-path",
    H.DELIVEREDTO: b"delivered-to",
    H.CONTENTLENGTH: b"content-length",
    H.CONTENTTYPE: b"content-type",
    H.CONTENTTRANSFERENCODING: b"content-transfer-encoding",
    H.NOTICEREQUESTEDUPONDELIVERYTO: b"notice-requested-upon-delivery-to",
    H.MAILFOLLOWUPTO: b"mail-followup-to",
}


def _matches(field: bytes, name: bytes) -> bool:
    """hmatch(): ``name`` (letters in either case), spaces or tabs, then ":"."""
    if len(field) < len(name):
        return False
    for have, want in zip(field, name, strict=False):
        if have != want and (want == ord("-") or have != want - 32):
            return False
    rest = field[len(name) :].lstrip(b" \t")
    return rest.startswith(b":")


def known(field: bytes) -> H:
    """hfield_known(): the type of a header field from its name."""
    for kind, name in NAMES.items():
        if _matches(field, name):
            return kind
    return H.UNKNOWN


def valid(field: bytes) -> bool:
    """hfield_valid(): a nonempty name of printable non-space bytes, then ":"."""
    colon = field.find(b":")
    if colon < 0:
        return False
    name = field[:colon].rstrip(b" \t")
    return bool(name) and all(32 < b < 127 for b in name)


def skipname(field: bytes) -> int:
    """hfield_skipname(): past the colon and the blanks (space, tab, CR, LF) after it."""
    colon = field.find(b":")
    i = len(field) if colon < 0 else colon + 1
    while i < len(field) and field[i] in b"\t\n\r ":
        i += 1
    return i


@dataclass(frozen=True)
class Split:
    fields: list[bytes]  # each with its continuation lines and final "\n"
    body: bytes  # from the separating empty line on; b"" when there is none


def _lines(data: bytes) -> list[bytes]:
    """getsa(): lines with their LF; a last line without one gets one."""
    lines = data.split(b"\n")
    last = lines.pop()
    out = [line + b"\n" for line in lines]
    if last:
        out.append(last + b"\n")
    return out


def split(data: bytes) -> Split:
    """headerbody(): the header fields and the body (see the module docstring)."""
    lines = _lines(data)
    fields: list[bytes] = []
    for n, line in enumerate(lines):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
            continue
        if line == b"\n":
            return Split(fields, b"".join(lines[n:]))
        if line.startswith(b"From "):
            fields.append(b"MBOX-Line: " + line)
        elif valid(line):
            fields.append(line)
        else:
            return Split(fields, b"\n" + b"".join(lines[n:]))
    return Split(fields, b"")


def date_field(
    t: int, patches: Collection[str], env: Mapping[str, str], home: Path | None = None
) -> bytes:
    """newfield_datemake(): ``Date: 26 Sep 1995 04:46:53 -0000`` (date822fmt)."""
    return b"Date: " + home_date(t, patches, env, home).encode() + b"\n"


def msgid_field(t: int, pid: int, idhost: bytes) -> bytes:
    """newfield_msgidmake(): ``Message-ID: <YYYYMMDDHHMMSS.pid.qmail@idhost>``, in GMT."""
    when = _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y%m%d%H%M%S")
    return b"Message-ID: <" + f"{when}.{pid}.qmail@".encode() + idhost + b">\n"
