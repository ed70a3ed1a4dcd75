"""maildir2mbox: move a Maildir's messages to the end of an mbox (maildir2mbox.c).

``$MAILDIR`` names the Maildir; ``$MAIL`` and ``$MAILTMP`` (relative names
count from inside the Maildir, where qmail has moved by then) the mbox and
its temporary copy. The steps:

1. remove ``tmp/`` files not accessed for 36 hours (maildir.c maildir_clean);
2. take the files of ``new/`` and ``cur/`` whose mtime is before now, oldest
   first; with none, exit 0 and touch nothing;
3. lock the mbox (flock), copy it to ``$MAILTMP``, append each message with
   a ``From `` line made from its first line when that is ``Return-Path:``
   (``From XXX`` otherwise) and the file's mtime in myctime's format, with
   ``>From`` quoting and a blank line after each;
4. fsync, rename ``$MAILTMP`` over ``$MAIL``, unlink the messages.

Like the C program, it copies a message's lines only while they end in a
newline: a last line without one is left out.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from server import maildirscan
from server.fdwrite import write_all
from server.local import replies
from server.local.mbox import gfrom, myctime
from server.local.tools import Die, handles_die, need_env
from server.maildirscan import ScanError, clean_tmp
from server.programs import ProgramContext

FATAL = "maildir2mbox: fatal: "
WARNING = "maildir2mbox: warning: "


def scan(maildir: Path, now: int) -> list[tuple[int, str]]:
    """maildir_scan(): (mtime, "new/name" or "cur/name"), in prioq.c's order."""
    try:
        return maildirscan.scan(maildir, now)
    except ScanError as exc:
        err = replies.error_str(exc.error.errno or 0)
        raise Die(111, f"{FATAL}unable to scan $MAILDIR/{exc.subdir}: {err}") from exc


def from_line(first: bytes | None, mtime: int) -> bytes:
    """The ``From `` line: the Return-Path sender with blanks as ``-``."""
    who = b"XXX"
    if first is not None and first.startswith(b"Return-Path: <"):
        if first[14:15] == b">":
            who = b"MAILER-DAEMON"
        else:
            who = first[14:-2].replace(b" ", b"-").replace(b"\t", b"-")
    return b"From " + who + b" " + myctime(mtime).encode()


def convert(data: bytes, mtime: int) -> bytes:
    lines = data.split(b"\n")
    complete = lines[:-1]  # lines that end in a newline; the rest is dropped
    first = complete[0] + b"\n" if complete else None
    out = [from_line(first, mtime)]
    for line in complete:
        if not line:
            out.append(b"\n")
            continue
        out.append((b">" if gfrom(line) else b"") + line + b"\n")
    out.append(b"\n")
    return b"".join(out)


def _sys(prefix: str, exc: OSError) -> Die:
    return Die(111, f"{FATAL}{prefix}: {replies.error_str(exc.errno or 0)}")


def run(env: Mapping[str, str], ctx: ProgramContext) -> None:
    mail, mailtmp = need_env(env, "MAIL", FATAL, 111), need_env(env, "MAILTMP", FATAL, 111)
    maildir_name = need_env(env, "MAILDIR", FATAL, 111)
    maildir = ctx.path(maildir_name)
    try:
        is_dir = stat.S_ISDIR(os.stat(maildir).st_mode)
    except OSError as exc:
        raise _sys(f"unable to chdir to {maildir_name}", exc) from exc
    if not is_dir:
        raise Die(111, f"{FATAL}unable to chdir to {maildir_name}: not a directory")
    now = ctx.runtime.now()
    clean_tmp(maildir, now)
    messages = scan(maildir, now)
    if not messages:
        return
    mbox, tmp = maildir / mail, maildir / mailtmp
    try:
        lock_fd = os.open(mbox, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise _sys(f"unable to lock {mail}", exc) from exc
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        _rewrite(mbox, tmp, mail, mailtmp, maildir, messages)
    finally:
        os.close(lock_fd)
    for _mtime, rel in messages:
        try:
            os.unlink(maildir / rel)
        except OSError as exc:
            warn = f"{WARNING}$MAILDIR/{rel} will be delivered twice; unable to unlink: "
            ctx.stderr.write((warn + replies.error_str(exc.errno or 0) + "\n").encode())


def _rewrite(
    mbox: Path, tmp: Path, mail: str, mailtmp: str, maildir: Path, messages: list[tuple[int, str]]
) -> None:
    try:
        old = mbox.read_bytes()
    except OSError as exc:
        raise _sys(f"unable to read {mail}", exc) from exc
    parts = [old]
    for mtime, rel in messages:
        try:
            parts.append(convert((maildir / rel).read_bytes(), mtime))
        except OSError as exc:
            raise _sys(f"unable to read $MAILDIR/{rel}", exc) from exc
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
        try:
            write_all(fd, b"".join(parts))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _sys(f"unable to write to {mailtmp}", exc) from exc
    try:
        os.rename(tmp, mbox)
    except OSError as exc:
        raise _sys(f"unable to move {mailtmp} to {mail}", exc) from exc


@handles_die
def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    run(env, ctx)
    return 0
