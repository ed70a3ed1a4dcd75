"""qmail-showctl's output read back into control files, for ``reproduce --control``.

qmail-showctl.c prints each control file as a paragraph: a blank line, the
file's name and ``": "``, then

* do_str: ``(Default.) `` when the file is missing, else ``PRE value.``;
* do_int: the same, ``PRE number POST.``;
* do_lst: ``(Default.) text`` when missing, else a newline and one line
  ``PRE item POST`` per line of the file.

Bytes outside 32..126 were printed as ``?`` (safeput), so such a value
cannot be had back. :data:`SHOWN` holds the PRE and POST texts of the files
that matter for a delivery, as qmail-showctl.c prints them; :func:`format`
is the inverse of :func:`parse`, for tests.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["str", "int", "lst"]

#: name -> (how it is printed, PRE, POST); qmail-showctl.c main()
SHOWN: dict[str, tuple[Kind, str, str]] = {
    "bouncefrom": ("str", "Bounce user name is ", ""),
    "bouncehost": ("str", "Bounce host name is ", ""),
    "concurrencyremote": ("int", "Remote concurrency is ", ""),
    "defaultdomain": ("str", "Default domain name is ", ""),
    "doublebouncehost": ("str", "2B recipient host: ", ""),
    "doublebounceto": ("str", "2B recipient user: ", ""),
    "envnoathost": ("str", "Presumed domain name is ", ""),
    "helohost": ("str", "SMTP client HELO host name is ", ""),
    "locals": ("lst", "Messages for ", " are delivered locally."),
    "me": ("str", "My name is ", ""),
    "percenthack": ("lst", "The percent hack is allowed for user%host@", "."),
    "plusdomain": ("str", "Plus domain name is ", ""),
    "queuelifetime": ("int", "Message lifetime in the queue is ", " seconds"),
    "smtproutes": ("lst", "SMTP route: ", ""),
    "timeoutconnect": ("int", "SMTP client connection timeout is ", " seconds"),
    "timeoutremote": ("int", "SMTP client data timeout is ", " seconds"),
    "virtualdomains": ("lst", "Virtual domain: ", ""),
}

_HEAD = re.compile(r"([a-z]+): (.*)")


class ShowctlError(ValueError):
    pass


def _value(name: str, text: str) -> str:
    _, pre, post = SHOWN[name]
    tail = post + "."
    if not (text.startswith(pre) and text.endswith(tail)) or len(text) < len(pre) + len(tail):
        raise ShowctlError(f"qmail-showctl's {name} line is not {pre!r}…{tail!r}: {text!r}")
    return text[len(pre) : len(text) - len(tail)]


def _item(name: str, text: str) -> str:
    _, pre, post = SHOWN[name]
    if not (text.startswith(pre) and text.endswith(post)):
        raise ShowctlError(f"qmail-showctl's {name} line is not {pre!r}…{post!r}: {text!r}")
    return text[len(pre) : len(text) - len(post)] if post else text[len(pre) :]


def looks_like(text: str) -> bool:
    """Is this qmail-showctl's output (rather than a control file)?"""
    return "\nme: " in text or text.startswith("me: ") or "qmail home directory" in text


def parse(text: str) -> dict[str, str]:
    """The control files qmail-showctl showed as present (defaults are left out)."""
    files: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _HEAD.fullmatch(lines[i])
        i += 1
        if m is None or m[1] not in SHOWN or lines[i - 2 : i - 1] not in ([""], []):
            continue
        name, rest = m[1], m[2]
        if rest.startswith("(Default.) "):
            continue
        if SHOWN[name][0] != "lst":
            files[name] = _value(name, rest) + "\n"
            continue
        items = []
        while i < len(lines) and lines[i]:
            items.append(_item(name, lines[i]))
            i += 1
        files[name] = "".join(f"{item}\n" for item in items)
    return files


def format(files: dict[str, str]) -> str:
    """What qmail-showctl prints for ``files`` (each of :data:`SHOWN`; missing ones default)."""
    out = []
    for name, (kind, pre, post) in SHOWN.items():
        out.append(f"\n{name}: ")
        if name not in files:
            out.append("(Default.) whatever the default is.\n")
        elif kind == "lst":
            out.append("\n" + "".join(f"{pre}{x}{post}\n" for x in files[name].splitlines()))
        else:
            out.append(f"{pre}{files[name].splitlines()[0]}{post}.\n")
    return "".join(out)
