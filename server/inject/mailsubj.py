"""mailsubj: ``mailsubj SUBJECT RECIP...`` sends stdin with that subject (mailsubj.sh).

The message is ``Subject: SUBJECT``, ``To: RECIP ...`` (the recipients joined
by spaces, as ``echo`` prints them), an empty line and stdin, given to
qmail-inject without arguments, so the To: line decides the recipients.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import BinaryIO

from server import programs


def message(subject: str, recipients: list[str], body: bytes) -> bytes:
    head = f"Subject: {subject}\nTo: {' '.join(recipients)}\n\n"
    return head.encode("utf-8", "surrogateescape") + body


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: programs.ProgramContext,
) -> int:
    subject = argv[1] if len(argv) > 1 else ""
    data = message(subject, argv[2:], stdin.read())
    inject = str(ctx.home / "bin" / "qmail-inject")
    if ctx.inprocess:
        with BytesIO(data) as piped:
            return programs.run("qmail-inject", [inject], env, piped, stdout, ctx)
    import subprocess

    stdout.flush()
    return subprocess.run([inject], input=data, env=dict(env), check=False).returncode
