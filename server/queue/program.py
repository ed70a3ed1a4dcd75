"""``qmail-queue``: queue the message on fd 0 with the envelope on fd 1.

qmail-queue(8): the message is read to end of file from descriptor 0, then
the envelope (``F``sender NUL, ``T``recipient NUL ..., NUL) from descriptor 1,
which the caller opened as the read end of a pipe. The exit code is the only
output; qmail-queue prints no diagnostics. The Received line's wording comes
from :mod:`server.queue.invoker`: the caller's ``QMAILSIM_INVOKER``, else
the real uid compared with the uids of qmail's users alias, qmaild and qmails
when this system has them (a process only), else "by uid N".

qmail-queue.c gives up after :data:`~server.queue.core.DEATH` seconds with
exit 52; we check the injected clock while waiting for the envelope instead
of arming a real alarm, so an in-process run never gets a signal.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Mapping
from typing import BinaryIO

from server.programs import ProgramContext
from server.queue import codes
from server.queue.core import DEATH, QueueFailure, write_queue
from server.queue.envelope import Envelope, EnvelopeError, EnvelopeReader
from server.queue.invoker import QMAIL_USERS, Invoker, invoker_from_env, make_job

#: qmail-queue.c ``umask(033)``: queue files are 0644 whoever runs it.
UMASK = 0o033
_CHUNK = 4096


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if not ctx.inprocess:
        # Only a real qmail-queue process owns its umask; in-process callers
        # share ours.
        os.umask(UMASK)
    pid = ctx.runtime.next_pid()
    qmail_uids = None if ctx.inprocess else system_qmail_uids()
    invoker = invoker_from_env(env, ctx.runtime.uid, qmail_uids)
    try:
        named = None if qmail_uids is None else {str(v): k for k, v in qmail_uids.items()}
        job = make_job(ctx, env, pid, invoker, named)
        try:
            message = stdin.read()
        except OSError as exc:
            raise QueueFailure(codes.READ_ERROR) from exc
        deadline = job.starttime + DEATH
        fd1 = _envelope_stream(stdout)
        write_queue(
            job,
            message,
            lambda: read_envelope_stream(fd1, lambda: ctx.runtime.now() >= deadline),
            ctx.runtime.fileops,
            fsync=ctx.runtime.fsync,
        )
    except QueueFailure as failure:
        return failure.code
    return codes.OK


def system_qmail_uids() -> dict[int, Invoker]:
    """The uids of qmail's users in this system's passwd (qmail compiles them in)."""
    found: dict[int, Invoker] = {}
    for name, invoker in QMAIL_USERS.items():
        try:
            uid = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        found.setdefault(uid, invoker)  # qmail-queue.c tests alias, then qmaild, then qmails
    return found


def _envelope_stream(stdout: BinaryIO) -> BinaryIO:
    """Descriptor 1 for reading: the stream itself, or fd 1 reopened for reading."""
    if stdout.readable():
        return stdout
    return os.fdopen(stdout.fileno(), "rb", buffering=0, closefd=False)


def read_envelope_stream(stream: BinaryIO, expired: Callable[[], bool]) -> Envelope:
    """Read up to the envelope's final NUL and no further than the chunk that holds it."""
    reader = EnvelopeReader()
    read = getattr(stream, "read1", stream.read)
    while True:
        if expired():
            raise EnvelopeError(codes.TIMEOUT, b"")
        try:
            chunk: bytes = read(_CHUNK)
        except OSError as exc:
            raise EnvelopeError(codes.READ_ERROR, b"") from exc
        if not chunk:
            return reader.eof()
        if reader.feed(chunk):
            return reader.result()
