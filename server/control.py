"""qmail's control files, read with qmail's rules (control.c, qmail-control(5)).

Three readers, as in control.c:

* :meth:`ControlDir.readline` — the first line, trailing spaces, tabs and the
  newline removed. An empty file is an empty string, not a missing file.
* :meth:`ControlDir.readfile` — every line, trailing white space removed,
  skipping empty lines and lines starting with ``#``.
* :meth:`ControlDir.readint` — the leading decimal digits of the first line;
  no digits at all counts as "missing" and the default applies (scan_ulong).

A file that does not exist gives the default; one that exists but cannot be
read raises :class:`~server.errors.TempFail` — qmail's programs treat that as
"unable to read controls" and try again later.

Many defaults fall back to the first line of ``me`` (``flagme`` in control.c);
:data:`CONTROLS` lists every control file netqmail-1.06 reads with its default,
the same table qmail-showctl prints from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from server import filecache
from server.errors import TempFail

_TRAILING = " \t\n"

Kind = Literal["int", "str", "list"]


@dataclass(frozen=True, kw_only=True)
class ControlSpec:
    """One control file: how it is read, its default, and showctl's wording."""

    name: str
    kind: Kind
    default: str | None = None  # for "list": showctl's sentence when missing
    flagme: bool = False
    pre: str = ""
    post: str = ""


def _int(name: str, default: str, pre: str, post: str = "") -> ControlSpec:
    return ControlSpec(name=name, kind="int", default=default, pre=pre, post=post)


def _str(name: str, flagme: bool, default: str, pre: str) -> ControlSpec:
    return ControlSpec(name=name, kind="str", flagme=flagme, default=default, pre=pre)


def _lst(name: str, default: str, pre: str, post: str, flagme: bool = False) -> ControlSpec:
    # flagme: a missing file reads as [me] (qmail-send reads locals so).
    return ControlSpec(name=name, kind="list", default=default, pre=pre, post=post, flagme=flagme)


#: Every control file, in qmail-showctl's order, with qmail-showctl's texts.
CONTROLS: tuple[ControlSpec, ...] = (
    _lst("badmailfrom", "Any MAIL FROM is allowed.", "", " not accepted in MAIL FROM."),
    _str("bouncefrom", False, "MAILER-DAEMON", "Bounce user name is "),
    _str("bouncehost", True, "bouncehost", "Bounce host name is "),
    _int("concurrencylocal", "10", "Local concurrency is "),
    _int("concurrencyremote", "20", "Remote concurrency is "),
    _int("databytes", "0", "SMTP DATA limit is ", " bytes"),
    _str("defaultdomain", True, "defaultdomain", "Default domain name is "),
    _str("defaulthost", True, "defaulthost", "Default host name is "),
    _str("doublebouncehost", True, "doublebouncehost", "2B recipient host: "),
    _str("doublebounceto", False, "postmaster", "2B recipient user: "),
    _str("envnoathost", True, "envnoathost", "Presumed domain name is "),
    _str("helohost", True, "helohost", "SMTP client HELO host name is "),
    _str("idhost", True, "idhost", "Message-ID host name is "),
    _str("localiphost", True, "localiphost", "Local IP address becomes "),
    _lst(
        "locals",
        "Messages for me are delivered locally.",
        "Messages for ",
        " are delivered locally.",
        flagme=True,
    ),
    _str("me", False, "undefined! Uh-oh", "My name is "),
    _lst(
        "percenthack",
        "The percent hack is not allowed.",
        "The percent hack is allowed for user%host@",
        ".",
    ),
    _str("plusdomain", True, "plusdomain", "Plus domain name is "),
    _lst("qmqpservers", "No QMQP servers.", "QMQP server: ", "."),
    _int("queuelifetime", "604800", "Message lifetime in the queue is ", " seconds"),
    _lst(
        "rcpthosts",
        "SMTP clients may send messages to any recipient.",
        "SMTP clients may send messages to recipients at ",
        ".",
    ),
    _lst("morercpthosts", "No effect.", "SMTP clients may send messages to recipients at ", "."),
    _str("smtpgreeting", True, "smtpgreeting", "SMTP greeting: 220 "),
    _lst("smtproutes", "No artificial SMTP routes.", "SMTP route: ", ""),
    _int("timeoutconnect", "60", "SMTP client connection timeout is ", " seconds"),
    _int("timeoutremote", "1200", "SMTP client data timeout is ", " seconds"),
    _int("timeoutsmtpd", "1200", "SMTP server data timeout is ", " seconds"),
    _lst("virtualdomains", "No virtual domains.", "Virtual domain: ", ""),
)

SPECS: dict[str, ControlSpec] = {spec.name: spec for spec in CONTROLS}
#: Files qmail-showctl knows without describing them in the list above.
KNOWN_EXTRA = frozenset({"morercpthosts.cdb"})


def _strip(line: str) -> str:
    return line.rstrip(_TRAILING)


def _scan_ulong(text: str) -> int | None:
    """scan_ulong: the leading decimal digits, or None where there are none."""
    digits = len(text) - len(text.lstrip("0123456789"))
    return int(text[:digits]) if digits else None


class ControlDir:
    """Reads ``HOME/control`` with qmail's rules. Construct once per program run."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        #: the directory, as a plain string: each read names a file in it
        #: (a Path and its joins cost a connection of serve's qmail-smtpd
        #: more than the reads' system calls)
        self.path = os.fspath(path)
        self._me: str | None = None
        self._me_read = False

    def _read(self, name: str) -> str | None:
        try:
            data = filecache.read_bytes(f"{self.path}/{name}")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TempFail(f"unable to read control/{name}: {exc.strerror}") from exc
        # qmail treats control files as bytes; latin-1 keeps every byte.
        return data.decode("latin-1")

    @property
    def me(self) -> str | None:
        """control/me's first line, or None when it does not exist (control_init)."""
        if not self._me_read:
            self._me = self.readline("me")
            self._me_read = True
        return self._me

    def readline(self, name: str) -> str | None:
        text = self._read(name)
        if text is None:
            return None
        return _strip(text.split("\n", 1)[0])

    def rldef(self, name: str, flagme: bool, default: str | None) -> str | None:
        """control_rldef: the file, else ``me`` if flagme, else ``default``."""
        value = self.readline(name)
        if value is not None:
            return value
        if flagme and self.me is not None:
            return self.me
        return default

    def readint(self, name: str, default: int) -> int:
        value = self.readline(name)
        if value is None:
            return default
        number = _scan_ulong(value)
        return default if number is None else number

    def readfile(self, name: str, flagme: bool = False) -> list[str] | None:
        """control_readfile: the lines, or ``[me]``/None when the file is missing."""
        text = self._read(name)
        if text is None:
            if flagme and self.me is not None:
                return [self.me]
            return None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        result = []
        for line in lines:
            line = _strip(line)
            if line and not line.startswith("#"):
                result.append(line)
        return result

    def get(self, name: str) -> str | int | list[str] | None:
        """Read a file by its spec in :data:`CONTROLS`, with its documented default."""
        spec = SPECS[name]
        if spec.kind == "int":
            assert spec.default is not None
            return self.readint(name, int(spec.default))
        if spec.kind == "str":
            return self.rldef(name, spec.flagme, spec.default)
        return self.readfile(name, spec.flagme)
