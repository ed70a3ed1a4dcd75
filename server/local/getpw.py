"""Who is in charge of a local part: users/cdb, the passwd database, ``alias``.

qmail-lspawn (``nughde_get`` in qmail-lspawn.c) first looks the lowered local
part up in ``users/cdb``: the exact key ``!local\\0`` (a ``=`` assignment), then
ever shorter prefixes ``!prefix`` (``+`` assignments, tried only when the
prefix's last character is one of the "wildchars" stored under the empty key,
and always for the empty prefix). Failing that it asks qmail-getpw
(qmail-getpw.c): the longest ``-``-separated prefix that is a passwd user
with a non-zero uid whose home directory exists and is owned by that uid;
failing that the ``alias`` user with dash ``-`` and the whole local part as
extension. The result is qmail's "nughde": user, uid, gid, home, dash, ext.

Users and privileges (DESIGN.md): the simulator runs as one user, so the
passwd database is reached only through a :class:`Passwd` object. The
``alias`` user is always the home's ``alias/`` directory (INSTALL.alias);
other names come from the system (:class:`SystemPasswd`) or from a table
(:class:`TablePasswd`, tests and hermetic simulations).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from server import cdb, filecache
from server.local import replies
from server.programs import ProgramContext
from server.scan import scan_ulong

#: auto_usera (conf-users) and auto_break (conf-break).
ALIAS_USER = "alias"
BREAK = "-"
#: qmail-getpw.c GETPW_USERLEN: a user name is shorter than this.
GETPW_USERLEN = 32
#: The uid/gid recorded for ``alias`` when the simulator runs as root: the
#: example of qmail-users(5). A recorded uid 0 would make qmail-lspawn refuse.
ALIAS_FALLBACK_IDS = (7790, 2108)


class LspawnExit(Exception):
    """The child of qmail-lspawn exits with a qlx.h code before qmail-local runs."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, kw_only=True)
class Nughde:
    """user, uid, gid, home, dash, ext: the arguments qmail-local gets."""

    user: str
    uid: int
    gid: int
    home: str
    dash: str
    ext: str

    def to_bytes(self) -> bytes:
        """qmail-getpw's output: six NUL-terminated fields."""
        fields = (self.user, str(self.uid), str(self.gid), self.home, self.dash, self.ext)
        return b"".join(f.encode("latin-1") + b"\0" for f in fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> Nughde:
        """Parse as spawn.c does: NUL-separated, uid/gid by scan_ulong."""
        parts = data.split(b"\0")
        if len(parts) < 6:
            raise LspawnExit(replies.QLX_USAGE)
        text = [p.decode("latin-1") for p in parts[:6]]
        return cls(
            user=text[0],
            uid=scan_ulong(text[1])[0],
            gid=scan_ulong(text[2])[0],
            home=text[3],
            dash=text[4],
            ext=text[5],
        )


def lower(text: str) -> str:
    """case_lowerb: ASCII letters only."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


# --- users/cdb ---------------------------------------------------------------


def cdb_lookup(reader: cdb.Reader, local: str) -> Nughde | None:
    """nughde_get's users/cdb search; None when nothing matches."""
    wildchars = reader.get(b"")
    if wildchars is None:
        raise LspawnExit(replies.QLX_CDB)  # cdb_seek(fd,"",0) must find it
    key = ("!" + lower(local)).encode("latin-1")
    exact = reader.get(key + b"\0")
    if exact is not None:
        return Nughde.from_bytes(exact + b"\0")
    for i in range(len(key), 0, -1):
        if i > 1 and key[i - 1 : i] not in _chars(wildchars):
            continue
        data = reader.get(key[:i])
        if data is not None:
            rest = local[i - 1 :].encode("latin-1")
            return Nughde.from_bytes(data + rest + b"\0")
    return None


def _chars(data: bytes) -> set[bytes]:
    return {data[i : i + 1] for i in range(len(data))}


#: The last users/cdb bytes read, and what each local part looked up in them
#: found: qmail-lspawn looks up every delivery's address, and the answer is
#: a function of the file's bytes (server.filecache hands back the same
#: object while the file is unchanged; a changed file is a new object).
_found: tuple[bytes, dict[str, Nughde | None]] = (b"", {})
#: local parts remembered at most for one users/cdb
FOUND_MAX = 4096


def users_cdb_lookup(home: Path, local: str) -> Nughde | None:
    """The users/cdb step: missing file is no match, an unreadable one QLX_CDB."""
    global _found
    try:
        data = filecache.read_bytes(os.path.join(home, "users", "cdb"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LspawnExit(replies.QLX_CDB) from exc
    of, found = _found
    if of is not data:
        found = {}
        _found = (data, found)
    if local in found:
        return found[local]
    try:
        nughde = cdb_lookup(cdb.Reader(data), local)
    except cdb.CdbError as exc:
        raise LspawnExit(replies.QLX_CDB) from exc
    if len(found) < FOUND_MAX:
        found[local] = nughde
    return nughde


# --- the passwd database ----------------------------------------------------


@dataclass(frozen=True)
class PwEntry:
    name: str
    uid: int
    gid: int
    dir: str


class Passwd(Protocol):
    def getpwnam(self, name: str) -> PwEntry | None: ...

    def home_owner(self, path: str) -> int | None:
        """stat(path).st_uid; None when it does not exist; OSError when temporary."""
        ...


def _alias_entry(home: Path, uid: int) -> PwEntry:
    ids = (uid, uid) if uid else ALIAS_FALLBACK_IDS
    return PwEntry(ALIAS_USER, ids[0], ids[1], str(home / "alias"))


def _stat_owner(path: str) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError as exc:
        if replies.error_temp(exc.errno or 0):
            raise
        return None


class SystemPasswd:
    """The real passwd database (pwd), with ``alias`` as the home's alias/ dir."""

    def __init__(self, home: Path, uid: int) -> None:
        self.alias = _alias_entry(home, uid)
        if uid == 0:
            # Run as root on a system that has qmail's users (INSTALL.ids),
            # qmail-getpw reports the system's alias uid and gid.
            system = self._system(ALIAS_USER)
            if system is not None and system.uid != 0:
                self.alias = PwEntry(ALIAS_USER, system.uid, system.gid, self.alias.dir)

    @staticmethod
    def _system(name: str) -> PwEntry | None:
        import pwd

        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        return PwEntry(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)

    def getpwnam(self, name: str) -> PwEntry | None:
        if name == ALIAS_USER:
            return self.alias
        return self._system(name)

    def home_owner(self, path: str) -> int | None:
        return _stat_owner(path)


class TablePasswd:
    """A fixed table of users (plus ``alias``); ``owners`` overrides stat()."""

    def __init__(
        self,
        home: Path,
        uid: int,
        entries: Sequence[PwEntry] = (),
        owners: Mapping[str, int] | None = None,
    ) -> None:
        self.alias = _alias_entry(home, uid)
        self.entries = {e.name: e for e in entries}
        self.owners = owners

    def getpwnam(self, name: str) -> PwEntry | None:
        if name == ALIAS_USER:
            return self.alias
        return self.entries.get(name)

    def home_owner(self, path: str) -> int | None:
        if self.owners is not None:
            return self.owners.get(path)
        return _stat_owner(path)


def userext(local: str, passwd: Passwd) -> Nughde | None:
    """qmail-getpw's search: the longest ``-`` prefix naming a usable account."""
    for cut in range(len(local), -1, -1):
        if cut >= GETPW_USERLEN:
            continue
        if cut < len(local) and local[cut] != BREAK:
            continue
        pw = passwd.getpwnam(lower(local[:cut]))
        if pw is None or pw.uid == 0:
            continue
        try:
            owner = passwd.home_owner(pw.dir)
        except OSError as exc:
            raise LspawnExit(replies.QLX_NFS) from exc
        # qmail-getpw.c wants the home owned by the user. The alias user's
        # home is the home's alias/, which a standard install (INSTALL.ids)
        # gives to alias; a one-user home cannot, so it counts as owned, and
        # "alias" and "alias-ext" find the alias user itself, as in qmail.
        if owner is not None and (owner == pw.uid or pw.name == ALIAS_USER):
            dash, ext = ("-", local[cut + 1 :]) if cut < len(local) else ("", "")
            return Nughde(user=pw.name, uid=pw.uid, gid=pw.gid, home=pw.dir, dash=dash, ext=ext)
    return None


def getpw(local: str, passwd: Passwd) -> Nughde:
    """qmail-getpw: a user with extension, else ``alias``; QLX_NOALIAS without one."""
    found = userext(local, passwd)
    if found is not None:
        return found
    pw = passwd.getpwnam(ALIAS_USER)
    if pw is None:
        raise LspawnExit(replies.QLX_NOALIAS)
    return Nughde(user=pw.name, uid=pw.uid, gid=pw.gid, home=pw.dir, dash="-", ext=local)


def nughde_get(home: Path, local: str, passwd: Passwd) -> Nughde:
    """users/cdb first, then qmail-getpw (qmail-lspawn.c nughde_get)."""
    found = users_cdb_lookup(home, local)
    if found is not None:
        return found
    return getpw(local, passwd)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    """bin/qmail-getpw LOCAL: print the nughde, or exit with a qlx.h code."""
    if len(argv) < 2:
        return 100
    try:
        found = getpw(argv[1], SystemPasswd(ctx.home, ctx.runtime.uid))
    except LspawnExit as exc:
        return exc.code
    stdout.write(found.to_bytes())
    stdout.flush()
    return 0
