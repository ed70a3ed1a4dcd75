"""qbiff: announce new mail on the user's terminals (qbiff.c, qbiff(1)).

Run from a ``.qmail`` as ``|qbiff``. It needs ``$USER``, ``$SENDER`` and
``$LOCAL`` (and a user name of at most 32 bytes); without them it quietly
exits 0, as it does on every other trouble: qbiff never fails a delivery.
It reads the message and builds::

    CR LF BEL *** TO <$LOCAL> FROM <$SENDER> CR LF
    (4 spaces)<Subject values, then the body: 78 bytes with the spaces> CR LF

with bytes outside 32..126 as ``_`` in the first line and ``/`` in the second
(a Subject's own newline shows as ``/``). Then, for every utmp record whose
``ut_user`` is ``$USER`` (any ``ut_type``), it takes ``ut_line`` and skips it
when it is empty, starts with ``/`` or holds a ``.``; opens it under ``/dev``
for appending (creating it 0600 when it is missing, as open_append does);
and writes there only when the terminal's owner-execute bit is on (``biff
y``) and the terminal belongs to the user qbiff runs as.

Where to look is injectable, for tests and the harness: ``$QMAILSIM_UTMP``
names the utmp file (default ``/var/run/utmp``, glibc's ``_PATH_UTMP``) and
``$QMAILSIM_DEV`` the directory that stands for ``/dev``. qmail-local hands
its environment to the ``|qbiff`` it runs, so setting them where qmail-send
starts (or on the command line, ``|QMAILSIM_UTMP=... qbiff``) reaches it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from server.inject.headers import H, known, skipname, split
from server.local import utmp
from server.local.maildirwatch import printable
from server.programs import ProgramContext

#: qbiff.c doit(): "if (text.len > 78) text.len = 78" (the 4 spaces included).
TEXT_MAX = 78
UTMP_ENV = "QMAILSIM_UTMP"
DEV_ENV = "QMAILSIM_DEV"


def announcement(local: bytes, sender: bytes, message: bytes) -> bytes:
    """The bytes qbiff writes to each terminal (``woof`` in qbiff.c)."""
    tofrom = printable(b"*** TO <" + local + b"> FROM <" + sender + b">", b"_")
    parts = split(message)
    text = b"    "
    for field in parts.fields:
        if known(field) is H.SUBJECT:
            text = (text + field[skipname(field) :])[:TEXT_MAX]
    text = printable((text + parts.body)[:TEXT_MAX], b"/")
    return b"\r\n\a" + tofrom + b"\r\n" + text + b"\r\n"


def terminals(records: list[utmp.Utmp], user: bytes) -> list[bytes]:
    """The ``ut_line`` of each of ``user``'s records that qbiff would try, in order."""
    lines = []
    for record in records:
        if utmp.cstr(record.user[: utmp.USER_SIZE]) != user:
            continue  # str_diffn(ut.ut_name,user,sizeof(ut.ut_name))
        line = utmp.cstr(record.line)
        if not line or line.startswith(b"/") or b"." in line:
            continue
        lines.append(line)
    return lines


def tell(tty: Path, uid: int, woof: bytes) -> None:
    """open_append() the terminal; write only if it is u+x and ``uid``'s."""
    try:
        fd = os.open(tty, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if st.st_mode & stat.S_IXUSR and st.st_uid == uid:
            with contextlib.suppress(OSError):  # substdio_putflush: errors ignored
                os.write(fd, woof)
    finally:
        os.close(fd)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    dev = Path(env.get(DEV_ENV, "/dev"))
    user, sender, local = env.get("USER"), env.get("SENDER"), env.get("LOCAL")
    if not dev.is_dir() or user is None or sender is None or local is None:
        return 0
    name = os.fsencode(user)
    if len(name) > utmp.USER_SIZE:
        return 0
    try:
        message = stdin.read()
    except OSError:
        return 0
    woof = announcement(os.fsencode(local), os.fsencode(sender), message)
    try:
        records = utmp.parse(Path(env.get(UTMP_ENV, utmp.UTMP_FILE)).read_bytes())
    except OSError:
        return 0
    for line in terminals(records, name):
        tell(dev / os.fsdecode(line), ctx.runtime.uid, woof)
    return 0
