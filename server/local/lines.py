"""The header lines and environment values qmail-local derives from its argv.

* ``DTLINE``: ``Delivered-To: <local>@<host>`` and a newline; a newline
  inside becomes ``_``.
* ``RPLINE``: ``Return-Path: <`` the sender quoted by quote.c's ``quote2``
  ``>`` and a newline; a newline inside becomes ``_``.
* ``EXT2``..``EXT4``: the extension after its first, second, third ``-``.
* ``HOST2``..``HOST4``: the host without its last one, two, three labels.

All pure functions of strings (qmail-local.c main, quote.c).
"""

from __future__ import annotations

from server.quote import quote2


def dtline(local: str, host: str) -> str:
    return "Delivered-To: " + f"{local}@{host}".replace("\n", "_") + "\n"


def rpline(sender: str) -> str:
    return ("Return-Path: <" + quote2(sender)).replace("\n", "_") + ">\n"


def ext_parts(ext: str) -> tuple[str, str, str, str]:
    """EXT, EXT2, EXT3, EXT4."""
    parts = [ext]
    x = ext
    for _ in range(3):
        dash = x.find("-")
        x = "" if dash < 0 else x[dash + 1 :]
        parts.append(x)
    return parts[0], parts[1], parts[2], parts[3]


def host_parts(host: str) -> tuple[str, str, str]:
    """HOST2, HOST3, HOST4 (a host with fewer dots keeps what it has)."""
    out = []
    end = len(host)
    for _ in range(3):
        dot = host.rfind(".", 0, end)
        end = dot if dot >= 0 else end
        out.append(host[:end])
    return out[0], out[1], out[2]
