"""Make a qmail home: what netqmail's ``make setup`` and ``config-fast`` make.

The directory tree and modes follow hier.c (directories ``d()``, the queue
split ``dsplit()``, ``lock/tcpto`` of 1024 zero bytes, the ``lock/trigger``
named pipe with mode 0622). Control files follow config-fast.sh. The three
``alias/`` files follow INSTALL.alias. ``bin/`` gets one small executable per
qmail program that runs ours through the interpreter that installed us.

Running :func:`setup` on an existing home is safe: it creates what is missing,
rewrites ``bin/`` and never removes queue contents, Maildirs or control files
the administrator wrote (config-fast's ``>>`` to locals/rcpthosts adds a line
only when it is not there yet).

Two kinds of home (DESIGN.md, "Users and privileges"). Given qmail's ids,
:func:`setup` makes a *split home*: hier.c's owners (install.c's chown, then
chmod) with group qmail, ``.qmail-sim/ids``, and ``bin/qmail-queue`` as the
setuid wrapper of :mod:`server.queue.wrapper`. Without them, a *one-user
home*: hier.c's modes, everything owned by whoever runs setup.
:func:`home_kind` says which one ``qmail-sim setup`` can make here, and
:func:`check_target` what it must refuse to touch. Owners and modes are set
on the entry itself, never through a symbolic link, since some directories
of a split home belong to users with fewer rights than root.
"""

from __future__ import annotations

import contextlib
import grp
import locale
import os
import pwd
import shlex
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from server.fdwrite import write_all
from server.privsep import GROUPS, IDS_FILE, USERS, QmailIds, privileged
from server.programs import PATCHES, PATCHES_FILE, PROGRAMS
from server.qdir import SPLIT
from server.queue import wrapper

# hier.c, in its order: (path, owner, mode). The owner is a user of
# INSTALL.ids (root is auto_uido) and the group always qmail (auto_gidq); a
# one-user home keeps the modes and leaves ownership to whoever runs setup.
_TOP_DIRS: tuple[tuple[str, str, int], ...] = (
    ("control", "root", 0o755),
    ("users", "root", 0o755),
    ("bin", "root", 0o755),
    ("boot", "root", 0o755),
    ("doc", "root", 0o755),
    ("man", "root", 0o755),
    *((f"man/{kind}{n}", "root", 0o755) for kind in ("cat", "man") for n in (1, 5, 7, 8)),
    ("alias", "alias", 0o2755),
    ("queue", "qmailq", 0o750),
    ("queue/pid", "qmailq", 0o700),
    ("queue/intd", "qmailq", 0o700),
    ("queue/todo", "qmailq", 0o750),
    ("queue/bounce", "qmails", 0o700),
)
_SPLIT_DIRS: tuple[tuple[str, str, int], ...] = (
    ("queue/mess", "qmailq", 0o750),
    ("queue/info", "qmails", 0o700),
    ("queue/local", "qmails", 0o700),
    ("queue/remote", "qmails", 0o700),
)
_LOCK_DIR = ("queue/lock", "qmailq", 0o750)

#: hier.c's modes for bin/ (qmail-queue is setuid qmailq there: 04711; a
#: one-user home cannot be setuid, so it gets the mode without the bit).
BIN_MODES: dict[str, int] = {
    "qmail-queue": 0o711,
    "qmail-lspawn": 0o700,
    "qmail-start": 0o700,
    "qmail-newu": 0o700,
    "qmail-newmrh": 0o700,
    "qmail-getpw": 0o711,
    "qmail-local": 0o711,
    "qmail-remote": 0o711,
    "qmail-rspawn": 0o711,
    "qmail-clean": 0o711,
    "qmail-send": 0o711,
    "splogger": 0o711,
    "qmail-pw2u": 0o711,
    "qmail-popup": 0o711,
}
DEFAULT_BIN_MODE = 0o755

#: ``(uid, gid)`` of the entries a split home gives to each of qmail's users;
#: None in a one-user home.
Owners: TypeAlias = dict[str, tuple[int, int]] | None


def owners(ids: QmailIds | None) -> Owners:
    """hier.c's owner names to ``(uid, auto_gidq)``."""
    if ids is None:
        return None
    names = ("root", "alias", "qmailq", "qmailr", "qmails")
    return {name: (getattr(ids, name), ids.qmail) for name in names}


def _fix(path: str | Path, mode: int, owner: tuple[int, int] | None) -> None:
    """install.c's chown then chmod (chown clears set-id bits), on the entry
    itself: O_NOFOLLOW, so a link planted by a directory's owner is refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


ALIAS_FILES = (".qmail-root", ".qmail-postmaster", ".qmail-mailer-daemon")

# boot/ (hier.c installs home, proc, binm1..3 and their "+df" variants). Each
# starts qmail-start with a different default delivery (the first argument,
# used when a user has no .qmail); "+df" puts dot-forward's ".forward"
# handling first. Logging goes through splogger, as in qmail's scripts. The
# scripts below are ours; only the delivery instructions are qmail's facts.
_DOT_FORWARD = "|dot-forward .forward\n"
_BINMAIL = '|preline -f {prog} {flag} "${{SENDER:-MAILER-DAEMON}}" -d "$USER"'
_BOOT_DELIVERY: dict[str, str] = {
    "home": "./Mailbox",
    "proc": "|preline procmail",
    "binm1": _BINMAIL.format(prog="/usr/libexec/mail.local", flag="-r"),
    "binm2": _BINMAIL.format(prog="/bin/mail", flag="-r"),
    "binm3": _BINMAIL.format(prog="/bin/mail", flag="-f"),
}
BOOT_SCRIPTS: dict[str, str] = {
    **_BOOT_DELIVERY,
    **{f"{name}+df": _DOT_FORWARD + delivery for name, delivery in _BOOT_DELIVERY.items()},
}


def boot_script(home: Path, delivery: str) -> str:
    """A boot script of ours: a clean environment, HOME/bin first in PATH."""
    return (
        "#!/bin/sh\n"
        "# qmail-sim: start qmail (qmail-start -> qmail-send) for this home,\n"
        "# logging through splogger; the first argument is the default delivery.\n"
        f'exec env - PATH={shlex.quote(f"{home}/bin")}:"$PATH" '
        f"qmail-start {shlex.quote(delivery)} splogger qmail\n"
    )


def write_boot(home: Path, own: Owners = None) -> None:
    owner = None if own is None else own["root"]
    for name in sorted(BOOT_SCRIPTS):
        text = boot_script(home, BOOT_SCRIPTS[name])
        path = f"{home}/boot/{name}"
        try:  # a new home's: made in one go
            _write_new(path, text.encode(_SCRIPT_ENCODING), 0o755, owner)
            continue
        except FileExistsError:
            pass
        with open(path, "w") as f:
            f.write(text)
        _fix(path, 0o755, owner)


@dataclass(frozen=True)
class ConfigFast:
    """The control files config-fast.sh derives from one host name."""

    me: str
    defaultdomain: str
    plusdomain: str

    @classmethod
    def for_host(cls, fqdn: str) -> ConfigFast:
        return cls(me=fqdn, defaultdomain=_ddom(fqdn), plusdomain=_pdom(fqdn))


def _ddom(fqdn: str) -> str:
    # sed 's/^\([^\.]*\)\.\([^\.]*\)\./\2\./': drop the first label when
    # the name has at least three labels ("a.b.c" -> "b.c").
    parts = fqdn.split(".")
    if len(parts) >= 3:
        return ".".join(parts[1:])
    return fqdn


def _pdom(fqdn: str) -> str:
    # sed 's/^.*\.\([^\.]*\)\.\([^\.]*\)$/\1.\2/': the last two labels, when
    # there are at least three.
    parts = fqdn.split(".")
    if len(parts) >= 3:
        return ".".join(parts[-2:])
    return fqdn


def _mkdir(path: str | Path, mode: int, owner: tuple[int, int] | None = None) -> None:
    try:
        os.mkdir(path, mode & 0o777)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    else:
        # made with its mode already (the umask took nothing): chmod would change nothing
        if owner is None and stat.S_IMODE(os.lstat(path).st_mode) == mode:
            return
    _fix(path, mode, owner)


def make_tree(home: Path, own: Owners = None) -> None:
    """hier.c's directories, lock/tcpto, lock/sendmutex and lock/trigger.

    Paths are plain strings here: a home has some 120 directories, and the
    simulator makes one per scenario."""

    def who(name: str) -> tuple[int, int] | None:
        return None if own is None else own[name]

    _mkdir(home, 0o755, who("root"))
    for rel, name, mode in _TOP_DIRS:
        _mkdir(f"{home}/{rel}", mode, who(name))
    for rel, name, mode in _SPLIT_DIRS:
        top = f"{home}/{rel}"
        _mkdir(top, mode, who(name))
        for i in range(SPLIT):
            _mkdir(f"{top}/{i}", mode, who(name))
    _mkdir(home / _LOCK_DIR[0], _LOCK_DIR[2], who(_LOCK_DIR[1]))
    lock = home / "queue" / "lock"
    _touch(lock / "tcpto", b"\0" * 1024, 0o644, who("qmailr"))
    _touch(lock / "sendmutex", b"", 0o600, who("qmails"))
    trigger = lock / "trigger"
    with contextlib.suppress(FileExistsError):
        os.mkfifo(trigger)
    _fix(trigger, 0o622, who("qmails"))


def _touch(path: Path, content: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
    _fix(path, mode, owner)


def _append_line(path: Path, line: str) -> None:
    existing = path.read_text().splitlines() if path.exists() else []
    if line not in existing:
        with path.open("a") as f:
            f.write(line + "\n")
    os.chmod(path, 0o644)


def config_fast(home: Path, fqdn: str) -> None:
    cfg = ConfigFast.for_host(fqdn)
    control = home / "control"
    for name, value in (
        ("me", cfg.me),
        ("defaultdomain", cfg.defaultdomain),
        ("plusdomain", cfg.plusdomain),
    ):
        (control / name).write_text(value + "\n")
        os.chmod(control / name, 0o644)
    _append_line(control / "locals", fqdn)
    _append_line(control / "rcpthosts", fqdn)


def write_aliases(home: Path) -> None:
    # INSTALL.alias: root touches them; alias/ is setgid, so their group is qmail.
    for name in ALIAS_FILES:
        _touch(home / "alias" / name, b"", 0o644)


def bin_script(name: str, home: Path, python: str) -> str:
    return (
        f"#!{python}\n"
        f"# qmail-sim: runs qmail's {name} for the home {home}\n"
        "import sys\n"
        "from server.__main__ import exec_program\n"
        f"sys.exit(exec_program({name!r}, {str(home)!r}, sys.argv[1:]))\n"
    )


def script_mode(mode: int) -> int:
    """A script is read by its interpreter: whoever may run it may read it
    (hier.c's 0711 is for a compiled program; a split home's scripts get 0755)."""
    return mode | (mode & 0o111) << 2


def write_bin(home: Path, python: str | None = None, own: Owners = None) -> None:
    """One script per program. Into an existing bin/ each goes through a
    temporary name and a rename, so that a running qmail never starts half a
    script; an empty bin/ (a new home) gets them in place."""
    python = python or sys.executable
    bindir = f"{home}/bin"
    fresh = not os.listdir(bindir)
    for name in PROGRAMS:
        data = bin_script(name, home, python).encode(_SCRIPT_ENCODING)
        mode = BIN_MODES.get(name, DEFAULT_BIN_MODE)
        if own is None:
            owner = None
        else:
            # root's, qmail-queue's script too: only the compiled wrapper that
            # replaces it is qmailq's (hier.c), as root may run what is here.
            mode, owner = script_mode(mode), own["root"]
        if fresh:
            _write_new(f"{bindir}/{name}", data, mode, owner)
            continue
        tmp = f"{bindir}/.{name}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _write_new(tmp, data, mode, owner)
        os.replace(tmp, f"{bindir}/{name}")


#: what open(path, "w") would encode a script's text with
_SCRIPT_ENCODING = locale.getpreferredencoding(False)


def _write_new(path: str, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """Create ``path`` (never through a link), write ``data``, then install.c's
    chown and chmod."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, data)
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def write_patches(home: Path, patches: Iterable[str]) -> None:
    chosen = sorted(set(patches))
    for name in chosen:
        if name not in PATCHES:
            raise ValueError(f"unknown patch {name!r} (known: {', '.join(PATCHES)})")
    path = home / PATCHES_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in chosen))
    # Read by every program, qmailq's setuid qmail-queue included.
    _fix(path.parent, 0o755, None)
    _fix(path, 0o644, None)


class SetupError(Exception):
    """What ``qmail-sim setup`` refuses, in one line."""


def setup(
    home: Path,
    me: str | None = None,
    patches: Iterable[str] | None = None,
    python: str | None = None,
    ids: QmailIds | None = None,
) -> str | None:
    """``make setup`` + ``config-fast ME``; patches=None keeps the recorded choice.

    With ``ids`` (run as root) a split home. Returns None, or one line saying
    what a split home lacks: without a C compiler bin/qmail-queue is not
    setuid, and only root and qmailq can queue.
    """
    home = Path(home).absolute()
    python = python or sys.executable
    if ids is None and (home / IDS_FILE).exists():
        raise SetupError(f"{home} is a split home: it cannot become a one-user home")
    own = owners(ids)
    make_tree(home, own)
    write_bin(home, python, own)
    write_boot(home, own)
    write_aliases(home)
    if me is not None:
        config_fast(home, me)
    if patches is not None or not (home / PATCHES_FILE).exists():
        write_patches(home, patches or ())
    if ids is None:
        return None
    ids.write(home)
    _fix(home / IDS_FILE, 0o644, None)
    why = wrapper.install(home, ids, python)
    if why is None:
        return None
    return f"bin/qmail-queue is not setuid qmailq ({why}): only root and qmailq can queue"


def missing_ids() -> list[str]:
    """qmail's users and groups (INSTALL.ids) this system does not have."""
    missing = []
    for name in USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            missing.append(name)
    for name in GROUPS:
        try:
            grp.getgrnam(name)
        except KeyError:
            missing.append(f"group {name}")
    return missing


def home_kind(home: Path, python: str | None = None) -> tuple[QmailIds | None, str]:
    """The ids for a split home at ``home``, or None and why it is a one-user home."""
    if not privileged():
        return None, "not root"
    ids = QmailIds.from_system()
    if ids is None:
        return None, f"qmail's users are missing: {', '.join(missing_ids())}"
    where = home if home.is_dir() else home.parent
    why = wrapper.unreachable(ids, python or sys.executable, where.absolute())
    if why is not None:
        return None, why
    return ids, ""


def is_home(path: Path) -> bool:
    """A home made by qmail-sim setup (it keeps its own state in .qmail-sim/)."""
    return (path / ".qmail-sim").is_dir() and (path / "queue").is_dir()


def check_target(home: Path, *, force: bool = False) -> None:
    """Refuse a file, a missing parent, or a non-empty directory that is not a home."""
    if home.exists() and not home.is_dir():
        raise SetupError(f"{home} exists and is not a directory")
    if not home.exists():
        parent = home.absolute().parent
        if not parent.exists():
            raise SetupError(f"{home}: the directory {parent} does not exist")
        if not parent.is_dir():
            raise SetupError(f"{home}: {parent} is not a directory")
        return
    if not force and not is_home(home) and any(home.iterdir()):
        raise SetupError(
            f"{home} is not empty and not a qmail-sim home; --force adds qmail's tree to it"
        )


def listing(home: Path) -> list[str]:
    """``mode type path`` per entry below ``home``, sorted: what the fixture compares.

    Our own ``.qmail-sim/`` is left out; it is not part of qmail's tree.
    """
    rows = []
    for path in sorted(home.rglob("*")):
        rel = path.relative_to(home).as_posix()
        if rel.split("/")[0] == ".qmail-sim":
            continue
        st = path.lstat()
        kind = "d" if stat.S_ISDIR(st.st_mode) else "p" if stat.S_ISFIFO(st.st_mode) else "f"
        rows.append(f"{stat.S_IMODE(st.st_mode):04o} {kind} {rel}")
    return rows


def make_mini(home: Path, servers: Iterable[str]) -> None:
    """A "mini-qmail" home (qmail-qmqpc(8)): ``bin/qmail-queue`` a symbolic link
    to qmail-qmqpc and ``control/qmqpservers`` the hubs' IP addresses, so that
    everything queued here goes by QMQP to the first hub that answers."""
    home = Path(home)
    path = home / "control" / "qmqpservers"
    path.write_text("".join(f"{s}\n" for s in servers))
    path.chmod(0o644)
    link = home / "bin" / "qmail-queue"
    tmp = home / "bin" / ".qmail-queue.mini"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to("qmail-qmqpc")
    os.replace(tmp, link)
