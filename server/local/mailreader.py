"""qail, elq and pinq: bring new mail in with maildir2mbox, then run a mail reader.

Each is a two-line script in netqmail-1.06 (qail.sh, elq.sh, pinq.sh):
``QMAIL/bin/maildir2mbox && exec READER "$@"`` with READER ``Mail``,
``elm`` or ``pine``. So a maildir2mbox failure is its own message and exit
code, and the reader replaces the process (PATH search) with the same
arguments. A reader that cannot be found is the shell's ``exec: READER: not
found`` and exit 127 (the wording of Debian's /bin/sh, dash).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from typing import BinaryIO

from server.local import maildir2mbox
from server.programs import ProgramContext

#: The shell's exit code for a command it cannot find.
NOT_FOUND = 127


def run_reader(
    reader: str,
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    code = maildir2mbox.main(["maildir2mbox"], env, stdin, stdout, ctx)
    if code != 0:
        return code
    args = [reader, *argv[1:]]
    try:
        if not ctx.inprocess:
            stdout.flush()
            os.execvpe(reader, args, dict(env))
        done = subprocess.run(args, env=dict(env), capture_output=True, check=False)
    except OSError:
        # The shell names the script by the path it was run as: HOME/bin/NAME.
        name = argv[0].rsplit("/", 1)[-1] if argv else reader
        script = ctx.home / "bin" / name
        ctx.stderr.write(f"{script}: 3: exec: {reader}: not found\n".encode())
        ctx.stderr.flush()
        return NOT_FOUND
    stdout.write(done.stdout)
    ctx.stderr.write(done.stderr)
    return done.returncode
