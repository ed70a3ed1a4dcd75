"""maildirwatch: a new-mail summary of ``$MAILDIR``, twice a minute (maildirwatch.c).

Each pass cleans old ``tmp/`` files (maildir_clean), lists ``new/`` only
(maildir_scan with new set and cur not) oldest first, clears the screen with
``ESC [;H ESC [;J`` and prints for each message::

    FROM <Return-Path value> TO <<Delivered-To value>>
    ESC[1m<the whole From: field>ESC[0m
    <Subject values, then the body: 158 bytes at most>
    (an empty line)

A missing Return-Path or Delivered-To prints ``?``; the bold line appears only
when there is a From field. Bytes outside 32..126 become ``?`` in the two
addresses and ``/`` in the From line and the text (so a Subject's newline
shows as ``/``). Then it sleeps 30 seconds, through the runtime's clock, and
goes round again; only a fatal error ends it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from server import maildirscan
from server.inject.headers import H, known, skipname, split
from server.local import replies
from server.local.tools import Die, handles_die, need_env
from server.programs import ProgramContext

FATAL = "maildirwatch: fatal: "
CLEAR = b"\033[;H\033[;J"
#: maildirwatch.c addtext(): "if (text.len > 158) text.len = 158".
TEXT_MAX = 158
#: The sleep(30) at the end of each pass ("twice per minute", maildirwatch(1)).
PAUSE = 30
READ_CHUNK = 8192


def printable(data: bytes, substitute: bytes) -> bytes:
    """Each byte outside 32..126 replaced by ``substitute`` (C's signed-char test)."""
    return bytes(b if 32 <= b <= 126 else substitute[0] for b in data)


def summary(message: bytes) -> bytes:
    """The lines maildirwatch prints for one message."""
    parts = split(message)
    sender, recipient, fromline, text = b"?", b"?", b"", b""
    for field in parts.fields:
        kind, i = known(field), skipname(field)
        if kind is H.SUBJECT:
            text = (text + field[i:])[:TEXT_MAX]
        elif kind is H.DELIVEREDTO and i < len(field):
            recipient = field[i:-1]
        elif kind is H.RETURNPATH and i < len(field):
            sender = field[i:-1]
        elif kind is H.FROM:
            fromline = field[:-1]
    text = (text + parts.body)[:TEXT_MAX]
    out = [b"FROM ", printable(sender, b"?"), b" TO <", printable(recipient, b"?"), b">\n"]
    if fromline:
        out += [b"\033[1m", printable(fromline, b"/"), b"\033[0m\n"]
    out += [printable(text, b"/"), b"\n\n"]
    return b"".join(out)


def read_message(path: Path) -> bytes | None:
    """open_read() then headerbody(): None if it cannot be opened (skipped);
    a read error is fatal ("trouble reading new message")."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    chunks = []
    try:
        while chunk := os.read(fd, READ_CHUNK):
            chunks.append(chunk)
    except OSError as exc:
        raise Die(111, FATAL + "trouble reading new message") from exc
    finally:
        os.close(fd)
    return b"".join(chunks)


def chdir(env: Mapping[str, str], ctx: ProgramContext) -> Path:
    """maildir_chdir(): the Maildir named by ``$MAILDIR``, or Die."""
    name = need_env(env, "MAILDIR", FATAL, 111)
    maildir = ctx.path(name)
    try:
        mode = os.stat(maildir).st_mode
    except OSError as exc:
        err = replies.error_str(exc.errno or 0)
        raise Die(111, f"{FATAL}unable to chdir to {name}: {err}") from exc
    if not stat.S_ISDIR(mode):
        raise Die(111, f"{FATAL}unable to chdir to {name}: not a directory")
    return maildir


def one_pass(maildir: Path, ctx: ProgramContext) -> Iterator[bytes]:
    """What one pass of the loop writes: the clear, then each message's summary."""
    now = ctx.runtime.now()
    maildirscan.clean_tmp(maildir, now)
    try:
        listing = maildirscan.scan(maildir, now, ("new",))
    except maildirscan.ScanError as exc:
        err = replies.error_str(exc.error.errno or 0)
        raise Die(111, f"{FATAL}unable to scan $MAILDIR/{exc.subdir}: {err}") from exc
    yield CLEAR
    for _mtime, rel in listing:
        message = read_message(maildir / rel)
        if message is not None:
            yield summary(message)


@handles_die
def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    maildir = chdir(env, ctx)
    while True:
        pieces = one_pass(maildir, ctx)
        stdout.write(next(pieces))  # the screen clear: substdio_putsflush()
        stdout.flush()
        for piece in pieces:
            stdout.write(piece)
        stdout.flush()
        ctx.runtime.sleep(PAUSE)
