"""qmail's users, and the one place that changes a process's uid (prot.c).

netqmail-1.06 compiles the uids and gids of its users into every program at
build time (auto_uids.c, from INSTALL.ids): alias, qmaild, qmaill, root
(auto_uido), qmailp, qmailq, qmailr, qmails, and the groups nofiles and
qmail. Our equivalent is ``HOME/.qmail-sim/ids``, written by ``qmail-sim
setup`` when it makes a *split home* (run as root, with qmail's users on the
system): one ``name:number`` line per user and group. A home without that file
is a *one-user home*: every program runs as whoever starts it (DESIGN.md,
"Users and privileges").

Every uid change in the project goes through :func:`prot_gid` /
:func:`prot_uid` (prot.c's two functions) or :func:`become`, so a reader can
find everything that runs privileged by searching for them.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

#: INSTALL.ids: the users and groups ``make setup`` expects.
USERS: Final = ("alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails")
GROUPS: Final = ("nofiles", "qmail")

IDS_FILE: Final = ".qmail-sim/ids"


@dataclass(frozen=True, kw_only=True)
class QmailIds:
    """auto_uids.c: the numbers a split home was made with."""

    alias: int  # auto_uida
    qmaild: int  # auto_uidd
    qmaill: int  # auto_uidl
    qmailp: int  # auto_uidp
    qmailq: int  # auto_uidq
    qmailr: int  # auto_uidr
    qmails: int  # auto_uids
    nofiles: int  # auto_gidn
    qmail: int  # auto_gidq
    root: int = 0  # auto_uido

    @classmethod
    def from_system(cls) -> QmailIds | None:
        """The system's qmail users and groups, or None when any is missing."""
        try:
            users = {name: pwd.getpwnam(name).pw_uid for name in USERS}
            groups = {name: grp.getgrnam(name).gr_gid for name in GROUPS}
        except KeyError:
            return None
        return cls(**users, **groups)

    def format(self) -> str:
        return "".join(f"{f.name}:{getattr(self, f.name)}\n" for f in fields(self))

    @classmethod
    def parse(cls, text: str) -> QmailIds:
        """The inverse of :meth:`format`; raises ValueError on anything else."""
        values: dict[str, int] = {}
        for line in text.splitlines():
            name, sep, number = line.partition(":")
            if not sep or not number.isdigit():
                raise ValueError(f"bad line in {IDS_FILE}: {line!r}")
            values[name] = int(number)
        return cls(**values)

    def write(self, home: Path) -> None:
        path = home / IDS_FILE
        path.parent.mkdir(exist_ok=True)
        path.write_text(self.format())

    @classmethod
    def of_home(cls, home: Path) -> QmailIds | None:
        """The ids a split home was made with; None for a one-user home."""
        try:
            text = (home / IDS_FILE).read_text()
        except FileNotFoundError:
            return None
        return cls.parse(text)


def privileged() -> bool:
    """Running as root, so that uids can be changed (qmail-start, qmail-lspawn)."""
    return os.geteuid() == 0


def prot_gid(gid: int) -> None:
    """prot.c prot_gid(): the only group is ``gid``."""
    os.setgroups([gid])
    os.setgid(gid)


def prot_uid(uid: int) -> None:
    """prot.c prot_uid(): real, effective and saved uid become ``uid``."""
    os.setuid(uid)


def become(uid: int, gid: int) -> None:
    """Groups first, then the uid (after setuid there is no way back)."""
    prot_gid(gid)
    prot_uid(uid)
