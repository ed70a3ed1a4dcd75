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
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from server.programs import PATCHES, PATCHES_FILE, PROGRAMS
from server.qdir import SPLIT

# hier.c, in its order: (path, mode). Owners are qmail's users; a one-user
# home keeps the modes and leaves ownership to whoever runs setup.
_TOP_DIRS: tuple[tuple[str, int], ...] = (
    ("control", 0o755),
    ("users", 0o755),
    ("bin", 0o755),
    ("boot", 0o755),
    ("doc", 0o755),
    ("man", 0o755),
    *((f"man/{kind}{n}", 0o755) for kind in ("cat", "man") for n in (1, 5, 7, 8)),
    ("alias", 0o2755),
    ("queue", 0o750),
    ("queue/pid", 0o700),
    ("queue/intd", 0o700),
    ("queue/todo", 0o750),
    ("queue/bounce", 0o700),
)
_SPLIT_DIRS: tuple[tuple[str, int], ...] = (
    ("queue/mess", 0o750),
    ("queue/info", 0o700),
    ("queue/local", 0o700),
    ("queue/remote", 0o700),
)
_LOCK_DIR = ("queue/lock", 0o750)

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


def write_boot(home: Path) -> None:
    for name in sorted(BOOT_SCRIPTS):
        path = home / "boot" / name
        path.write_text(boot_script(home, BOOT_SCRIPTS[name]))
        os.chmod(path, 0o755)


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


def _mkdir(path: Path, mode: int) -> None:
    path.mkdir(exist_ok=True)
    os.chmod(path, mode)


def make_tree(home: Path) -> None:
    _mkdir(home, 0o755)
    for rel, mode in _TOP_DIRS:
        _mkdir(home / rel, mode)
    for rel, mode in _SPLIT_DIRS:
        _mkdir(home / rel, mode)
        for i in range(SPLIT):
            _mkdir(home / rel / str(i), mode)
    _mkdir(home / _LOCK_DIR[0], _LOCK_DIR[1])
    lock = home / "queue" / "lock"
    _touch(lock / "tcpto", b"\0" * 1024, 0o644)
    _touch(lock / "sendmutex", b"", 0o600)
    trigger = lock / "trigger"
    if not trigger.exists():
        os.mkfifo(trigger)
    os.chmod(trigger, 0o622)


def _touch(path: Path, content: bytes, mode: int) -> None:
    if not path.exists():
        path.write_bytes(content)
    os.chmod(path, mode)


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


def write_bin(home: Path, python: str | None = None) -> None:
    python = python or sys.executable
    for name in PROGRAMS:
        path = home / "bin" / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(bin_script(name, home, python))
        os.chmod(tmp, BIN_MODES.get(name, DEFAULT_BIN_MODE))
        os.replace(tmp, path)


def write_patches(home: Path, patches: Iterable[str]) -> None:
    chosen = sorted(set(patches))
    for name in chosen:
        if name not in PATCHES:
            raise ValueError(f"unknown patch {name!r} (known: {', '.join(PATCHES)})")
    path = home / PATCHES_FILE
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in chosen))


def setup(
    home: Path,
    me: str | None = None,
    patches: Iterable[str] | None = None,
    python: str | None = None,
) -> None:
    """``make setup`` + ``config-fast ME``; patches=None keeps the recorded choice."""
    home = Path(home).absolute()
    make_tree(home)
    write_bin(home, python)
    write_boot(home)
    write_aliases(home)
    if me is not None:
        config_fast(home, me)
    if patches is not None or not (home / PATCHES_FILE).exists():
        write_patches(home, patches or ())


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
