"""qmail-pop3d: serve one Maildir over POP3 after checkpassword let the user in.

``qmail-pop3d MAILDIR`` (qmail-pop3d(8)), MAILDIR relative to the current
directory, which checkpassword made the user's home. At start it removes
stale tmp/ files, lists new/ and cur/ (see :mod:`server.pop3.maildir`) and
says ``+OK`` (the answer to PASS); then :class:`server.pop3.core.Pop3d`
answers commands. Nothing on disk changes before QUIT: there the deleted
messages are unlinked and the rest of new/ renamed to ``cur/NAME:2,``.
End of input without QUIT changes nothing. qmail-pop3d always exits 0.

In-process, "the current directory" is ``ctx.cwd`` when set (our
checkpassword sets it instead of a real chdir).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from server.maildirscan import ScanError, clean_tmp
from server.pop3 import replies
from server.pop3.core import Commit, Event, Fetch, LineTooLong, Pop3d, Reply, State, blast
from server.pop3.maildir import commit, scan
from server.pop3.stream import read_command, say
from server.programs import ProgramContext

#: qmail-pop3d's die() is _exit(0): every way out exits 0.
EXIT = 0


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if len(argv) < 2:
        say(stdout, replies.NO_MAILDIR)
        return EXIT
    maildir = ctx.path(argv[1])
    # chdir(argv[1]) is what qmail checks: a directory we may enter.
    if not maildir.is_dir() or not os.access(maildir, os.X_OK):
        say(stdout, replies.NO_MAILDIR)
        return EXIT
    now = ctx.runtime.now()
    clean_tmp(maildir, now)
    try:
        session = Pop3d.over(scan(maildir, now))
    except ScanError:
        say(stdout, replies.SCAN)
        return EXIT
    say(stdout, replies.OK)
    while session.state is State.TRANSACTION:
        try:
            command = read_command(stdin, exact=not ctx.inprocess)
        except LineTooLong:
            return EXIT
        if command is None:
            return EXIT
        for event in session.handle(command):
            _perform(event, maildir, stdout)
    return EXIT


def _perform(event: Event, maildir: Path, stdout: BinaryIO) -> None:
    if isinstance(event, Reply):
        say(stdout, event.data)
    elif isinstance(event, Fetch):
        try:
            data = (maildir / event.path).read_bytes()
        except OSError:
            # another process took the message away since the listing
            say(stdout, replies.NO_SUCH)
            return
        say(stdout, replies.OK + blast(data, event.limit))
    elif isinstance(event, Commit):
        failed = commit(maildir, event)
        say(stdout, replies.NO_UNLINK * failed + replies.OK)
