"""``qmail-newmrh``: compile control/morercpthosts into morercpthosts.cdb (qmail-newmrh.c).

Each line is lower-cased, trailing spaces, tabs and the newline are removed;
empty lines and lines starting with ``#`` are skipped; the rest become keys
with empty data. The cdb is written to ``morercpthosts.tmp`` (mode 0644, from
umask 033), fsynced and renamed over ``morercpthosts.cdb``. Failures are
qmail's strerr lines on stderr with exit 111.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from server import cdb, strerr
from server.errors import EXIT_TEMP
from server.fdwrite import write_synced
from server.programs import ProgramContext

FATAL = "qmail-newmrh: fatal: "


def keys(text: bytes) -> list[bytes]:
    """The hosts of a morercpthosts file, as qmail-newmrh stores them."""
    found = []
    for line in text.lower().split(b"\n"):
        line = line.rstrip(b" \t\n")
        if line and not line.startswith(b"#"):
            found.append(line)
    return found


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    control = ctx.home / "control"

    def die(message: str, exc: OSError) -> int:
        return strerr.die_sys(ctx.stderr, EXIT_TEMP, FATAL, message, err=exc.errno)

    try:
        text = (control / "morercpthosts").read_bytes()
    except OSError as exc:
        return die("unable to read control/morercpthosts: ", exc)
    tmp = control / "morercpthosts.tmp"
    try:
        write_synced(tmp, cdb.build((k, b"") for k in keys(text)))
    except OSError as exc:
        return die("unable to write to control/morercpthosts.tmp: ", exc)
    try:
        tmp.rename(control / "morercpthosts.cdb")
    except OSError as exc:
        # strerr_die2sys without ": " before the error text, as qmail prints it.
        return die("unable to move control/morercpthosts.tmp to control/morercpthosts.cdb", exc)
    return 0
