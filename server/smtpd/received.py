"""The Received line qmail-smtpd puts on top of each message (received.c).

    Received: from <remotehost> (HELO <helo>) (<remoteinfo>@<remoteip>)
      by <local> with SMTP; 26 Sep 1995 04:46:54 -0000

The ``(HELO ...)`` part appears only when the HELO/EHLO argument differs,
ignoring case, from TCPREMOTEHOST; ``<remoteinfo>@`` only when TCPREMOTEINFO
is set. Every byte of the variable parts outside ``[A-Za-z0-9.@%+/=:-]`` is
written as ``?`` (safeput). The date is date822fmt's, newline included.
"""

from __future__ import annotations

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.@%+/=:-")


def safe(text: bytes) -> bytes:
    return bytes(ch if ch in _SAFE else 0x3F for ch in text)


def received(
    *,
    protocol: bytes,
    local: bytes,
    remoteip: bytes,
    remotehost: bytes,
    remoteinfo: bytes | None,
    helo: bytes | None,
    date: bytes,
) -> bytes:
    """received(); ``date`` is date822fmt's text without its newline."""
    parts = [b"Received: from ", safe(remotehost)]
    if helo is not None:
        parts += [b" (HELO ", safe(helo), b")"]
    parts.append(b" (")
    if remoteinfo is not None:
        parts += [safe(remoteinfo), b"@"]
    parts += [safe(remoteip), b")\n  by ", safe(local), b" with ", protocol, b"; ", date, b"\n"]
    return b"".join(parts)
