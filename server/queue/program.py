"""``qmail-queue``: queue the message on fd 0 with the envelope on fd 1.

qmail-queue(8): the message is read to end of file from descriptor 0, then
the envelope (``F``sender NUL, ``T``recipient NUL ..., NUL) from descriptor 1,
which the caller opened as the read end of a pipe. The exit code is the only
output; qmail-queue prints no diagnostics. The Received line's wording comes
from :mod:`server.queue.invoker`. In a split home a process goes by its real
uid alone, compared with the home's ids of alias, qmaild and qmails, and the
``u`` record is that uid. Elsewhere: the caller's ``QMAILSIM_INVOKER``, else
the real uid compared with the uids of qmail's users when this system has
them (a process only), else "by uid N".

A split home's ``bin/qmail-queue`` is a setuid wrapper
(:mod:`server.queue.wrapper`) that runs :func:`privileged_main` as qmailq
with a fixed environment; any failure there is exit 111.

qmail-queue.c gives up after :data:`~server.queue.core.DEATH` seconds with
exit 52; we check the injected clock while waiting for the envelope instead
of arming a real alarm, so an in-process run never gets a signal.
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from server.errors import EXIT_TEMP
from server.privsep import QmailIds
from server.programs import ProgramContext, read_patches
from server.queue import codes
from server.queue.core import DEATH, QueueFailure, write_queue
from server.queue.envelope import Envelope, EnvelopeError, EnvelopeReader
from server.queue.invoker import (
    QMAIL_USERS,
    Invoker,
    invoker_from_env,
    invoker_from_uid,
    make_job,
)
from server.runtime import real_environ, real_runtime

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
    try:
        invoker, named = _invoker(ctx, env)
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


def _invoker(ctx: ProgramContext, env: Mapping[str, str]) -> tuple[Invoker, dict[str, int] | None]:
    """Who called, and the uids of the named callers for the ``u`` record."""
    if ctx.inprocess:
        return invoker_from_env(env, ctx.runtime.uid), None
    try:
        ids = QmailIds.of_home(ctx.home)
    except (OSError, ValueError) as exc:
        raise QueueFailure(codes.NO_CONFIG) from exc
    if ids is not None:
        # A split home: the real uid alone, as qmail-queue.c's getuid(); a
        # named caller's u record is its own uid.
        return invoker_from_uid(ctx.runtime.uid, ids), None
    qmail_uids = system_qmail_uids()
    named = {str(v): k for k, v in qmail_uids.items()}
    return invoker_from_env(env, ctx.runtime.uid, qmail_uids), named


def privileged_main(home: str) -> int:
    """The setuid wrapper's entry (server/data/qmail-queue.c): qmail-queue for ``home``.

    Runs as qmailq with the caller's real uid, descriptors 0 and 1, and the
    environment the wrapper fixed. Whatever goes wrong outside qmail-queue's
    own exit codes is 111: the queue's ordered steps leave no half message.
    """
    try:
        path = Path(home)
        ctx = ProgramContext(
            home=path,
            runtime=real_runtime(),
            stderr=sys.stderr.buffer,
            patches=read_patches(path),
            inprocess=False,
        )
        return main(["qmail-queue"], real_environ(), sys.stdin.buffer, sys.stdout.buffer, ctx)
    except Exception:
        return EXIT_TEMP


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
