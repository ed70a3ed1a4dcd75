"""qmail-showctl: print the home's compiled-in settings and every control file.

Output follows qmail-showctl.c line for line: a header of compiled-in values,
then for each control file (in :data:`server.control.CONTROLS` order) a blank
line, ``NAME: `` and either ``(Default.) ...``, the value(s) wrapped in the
file's sentence, or ``Oops! Trouble reading this file.``. Bytes outside
32..126 print as ``?`` (safeput). Files it does not know are reported last
with ``I have no idea what this file does.``

Compiled-in values of a one-user home: conf-break ``-``, conf-patrn ``002``
(printed in decimal: 2), conf-spawn 120, conf-split 23. qmail prints the
uids of its eight users (alias, qmaild, qmaill, root, qmailp, qmailq,
qmailr, qmails) and the gids of its two groups (nofiles, qmail). In a
one-user home every one of those users is the user running the programs, so
every uid printed is ``ctx.runtime.uid``; the runtime carries no gid, so both
gids are the group owning the home directory (the group of whoever ran
``qmail-sim setup``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from server.control import CONTROLS, KNOWN_EXTRA, SPECS, ControlDir, ControlSpec
from server.errors import EXIT_OK, EXIT_TEMP, TempFail
from server.programs import ProgramContext
from server.qdir import SPLIT
from server.scan import scan_ulong

AUTO_BREAK = "-"  # conf-break
AUTO_PATRN = 0o002  # conf-patrn, read as octal by auto-int8
AUTO_SPAWN = 120  # conf-spawn
QMAIL_USERS = 8  # conf-users: alias qmaild qmaill root qmailp qmailq qmailr qmails
QMAIL_GROUPS = 2  # conf-groups: qmail nofiles (printed gidn, gidq)

TROUBLE = "Oops! Trouble reading this file.\n"
NO_RCPTHOSTS_DEFAULT = "No rcpthosts; morercpthosts is irrelevant."
NO_RCPTHOSTS_PRE = "No rcpthosts; doesn't matter that morercpthosts has "


def safe(text: str) -> str:
    """safeput: every byte outside 32..126 becomes ``?``."""
    return "".join(ch if 32 <= ord(ch) <= 126 else "?" for ch in text)


def _as_c_int(value: int) -> int:
    # scan_ulong into an unsigned long, stored into an int; negative -> 0.
    value %= 2**64
    value %= 2**32
    if value >= 2**31:
        return 0
    return value


def do_int(ctl: ControlDir, spec: ControlSpec) -> str:
    head = f"\n{spec.name}: "
    try:
        line = ctl.readline(spec.name)
    except TempFail:
        return head + TROUBLE
    value, used = (0, 0) if line is None else scan_ulong(line)
    if not used:
        return f"{head}(Default.) {spec.pre}{spec.default}{spec.post}.\n"
    return f"{head}{spec.pre}{_as_c_int(value)}{spec.post}.\n"


def do_str(ctl: ControlDir, spec: ControlSpec, me: str | None) -> str:
    head = f"\n{spec.name}: "
    try:
        line = ctl.readline(spec.name)
    except TempFail:
        return head + TROUBLE
    if line is None:
        value = me if spec.flagme and me is not None else (spec.default or "")
        return f"{head}(Default.) {spec.pre}{safe(value)}.\n"
    return f"{head}{spec.pre}{safe(line)}.\n"


def _entries(lines: list[str]) -> list[str]:
    # control_readfile joins lines with NULs; a NUL inside a line therefore
    # splits it for showctl, and a line whose first byte is NUL is dropped.
    out: list[str] = []
    for line in lines:
        if not line.startswith("\0"):
            out.extend(line.split("\0"))
    return out


def do_lst(ctl: ControlDir, name: str, default: str, pre: str, post: str) -> tuple[str, int]:
    """The text and control_readfile's result (0 missing, 1 read, -1 trouble)."""
    head = f"\n{name}: "
    try:
        lines = ctl.readfile(name)
    except TempFail:
        return head + TROUBLE, -1
    if lines is None:
        return f"{head}(Default.) {default}\n", 0
    body = "".join(f"{pre}{safe(entry)}{post}\n" for entry in _entries(lines))
    return f"{head}\n{body}", 1


def _lst(ctl: ControlDir, name: str) -> tuple[str, int]:
    spec = SPECS[name]
    return do_lst(ctl, name, spec.default or "", spec.pre, spec.post)


def morercpthosts_cdb(control: Path) -> str:
    """The stat() comparison qmail-showctl makes of morercpthosts and its cdb."""
    head = "\nmorercpthosts.cdb: "
    try:
        text_time: int | None = int((control / "morercpthosts").stat().st_mtime)
    except OSError:
        text_time = None
    try:
        cdb_time: int | None = int((control / "morercpthosts.cdb").stat().st_mtime)
    except OSError:
        cdb_time = None
    if text_time is None:
        if cdb_time is None:
            return head + "(Default.) No effect.\n"
        return head + "Oops! morercpthosts.cdb exists but morercpthosts doesn't.\n"
    if cdb_time is None:
        return head + "Oops! morercpthosts exists but morercpthosts.cdb doesn't.\n"
    if text_time > cdb_time:
        return head + "Oops! morercpthosts.cdb is older than morercpthosts.\n"
    return head + "Modified recently enough; hopefully up to date.\n"


def header(home: Path, uid: int, gid: int) -> str:
    uids = ", ".join([str(uid)] * QMAIL_USERS)
    gids = ", ".join([str(gid)] * QMAIL_GROUPS)
    return (
        f"qmail home directory: {home}.\n"
        f"user-ext delimiter: {AUTO_BREAK}.\n"
        f"paternalism (in decimal): {AUTO_PATRN}.\n"
        f"silent concurrency limit: {AUTO_SPAWN}.\n"
        f"subdirectory split: {SPLIT}.\n"
        f"user ids: {uids}.\n"
        f"group ids: {gids}.\n"
    )


def controls_report(ctl: ControlDir, me: str | None) -> str:
    """Every known control file, in qmail-showctl's order."""
    parts: list[str] = []
    rcpthosts_ok = 0
    for spec in CONTROLS:
        if spec.name == "morercpthosts":
            if rcpthosts_ok:
                parts.append(_lst(ctl, spec.name)[0])
            else:  # rcpthosts missing or unreadable: qmail-showctl's other wording
                text, _ = do_lst(ctl, spec.name, NO_RCPTHOSTS_DEFAULT, NO_RCPTHOSTS_PRE, ".")
                parts.append(text)
            parts.append(morercpthosts_cdb(Path(ctl.path)))
        elif spec.kind == "int":
            parts.append(do_int(ctl, spec))
        elif spec.kind == "str":
            parts.append(do_str(ctl, spec, me))
        else:
            text, result = _lst(ctl, spec.name)
            if spec.name == "rcpthosts":
                rcpthosts_ok = result
            parts.append(text)
    return "".join(parts)


def unknown_files(names: list[str]) -> str:
    """Files qmail-showctl does not know. qmail prints them in readdir order;
    we sort them so the output does not depend on the file system."""
    known = set(SPECS) | KNOWN_EXTRA
    unknown = sorted(n for n in names if n not in known and n not in {".", ".."})
    return "".join(f"\n{name}: I have no idea what this file does.\n" for name in unknown)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    """qmail-showctl takes no arguments and reads no environment."""
    home = ctx.home
    try:
        gid = home.stat().st_gid
    except OSError:
        gid = 0
    out = header(home, ctx.runtime.uid, gid)
    code = EXIT_OK
    control = home / "control"
    if not home.is_dir():
        out += f"Oops! Unable to chdir to {home}.\n"
        code = EXIT_TEMP
    elif not control.is_dir():
        out += "Oops! Unable to chdir to control.\n"
        code = EXIT_TEMP
    else:
        out, code = _body(out, control)
    stdout.write(out.encode("latin-1", "replace"))
    stdout.flush()
    return code


def _body(out: str, control: Path) -> tuple[str, int]:
    try:
        names = os.listdir(control)
    except OSError:
        return out + "Oops! Unable to open current directory.\n", EXIT_TEMP
    ctl = ControlDir(control)
    try:
        me = ctl.me
    except TempFail:
        return out + "Oops! Trouble reading control/me.", EXIT_TEMP
    return out + controls_report(ctl, me) + unknown_files(names), EXIT_OK
