"""The one way our programs queue a message: qmail.c's qmail_open ... qmail_close.

:func:`queue_message` is what qmail-smtpd, qmail-inject, qmail-local (for
forwards) and qmail-send (for bounces) call. It chooses the queue program
as qmail.c does and reports as qmail_close() does:

- ``QMAILQUEUE`` set in ``env``: run that program (a path, relative to the
  home, exec'd without a shell, as qmail.c chdirs to auto_qmail and execv's
  it), message on its fd 0 and envelope on its fd 1;
- else, when ``ctx.queue_socket`` is set: hand it to that queue service
  (:mod:`server.queue.service`), which queues as qmailq;
- else, when ``ctx.inprocess``: run our queue writer in this process
  (qp = ``ctx.runtime.next_pid()``, the message number is known);
- else: run ``HOME/bin/qmail-queue`` as a process.

A process gets the caller's ``env`` plus ``QMAILSIM_INVOKER`` (see
:mod:`server.queue.invoker`), and its exit code is mapped by
:mod:`server.queue.codes`. ``error`` is ``""`` on success, else the
qmail_close() text starting with ``Z`` (temporary) or ``D`` (permanent).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from server.programs import ProgramContext
from server.queue import codes
from server.queue.core import QueueFailure, write_queue
from server.queue.envelope import encode_envelope, parse_envelope
from server.queue.invoker import INVOKER_ENV, Invoker, invoker_env_value, make_job
from server.queue.service import queue_via

__all__ = ["Invoker", "QueueResult", "queue_message"]

#: qmail.c's default queue program, relative to the home.
QMAIL_QUEUE = "bin/qmail-queue"


@dataclass(frozen=True)
class QueueResult:
    error: str  # "" on success, else qmail_close()'s text, first char 'Z' or 'D'
    qp: int  # pid of that qmail-queue run (qmail_qp), for "250 ok T qp N"
    msgid: int | None  # inode of the queued message when known (in-process)

    @property
    def ok(self) -> bool:
        return self.error == ""


def queue_message(
    ctx: ProgramContext,
    env: Mapping[str, str],
    message: bytes,
    sender: str,
    recipients: Sequence[str],
    *,
    invoker: Invoker,
) -> QueueResult:
    """Queue ``message`` for ``recipients`` from ``sender`` (``""`` for ``<>``)."""
    envelope = encode_envelope(sender, recipients)
    if "QMAILQUEUE" in env:
        return run_queue_program(env["QMAILQUEUE"], ctx.home, env, message, envelope, invoker)
    if ctx.queue_socket is not None:
        code, qp = queue_via(ctx.queue_socket, message, envelope)
        return QueueResult(codes.close_text(code), qp, None)
    if ctx.inprocess:
        return _queue_inprocess(ctx, env, message, envelope, invoker)
    return run_queue_program(QMAIL_QUEUE, ctx.home, env, message, envelope, invoker)


def _queue_inprocess(
    ctx: ProgramContext,
    env: Mapping[str, str],
    message: bytes,
    envelope: bytes,
    invoker: Invoker,
) -> QueueResult:
    pid = ctx.runtime.next_pid()
    try:
        job = make_job(ctx, env, pid, invoker)
        msgid = write_queue(
            job,
            message,
            lambda: parse_envelope(envelope),
            ctx.runtime.fileops,
            fsync=ctx.runtime.fsync,
        )
    except QueueFailure as failure:
        return QueueResult(codes.close_text(failure.code), pid, None)
    return QueueResult("", pid, msgid)


def run_queue_program(
    program: str,
    home: Path,
    env: Mapping[str, str],
    message: bytes,
    envelope: bytes,
    invoker: Invoker,
) -> QueueResult:
    """qmail_open/put/from/to/close against a queue program run as a process."""
    executable = program if os.path.isabs(program) else str(home / program)
    child_env = {**env, INVOKER_ENV: invoker_env_value(invoker)}
    env_read, env_write = os.pipe()
    try:
        proc = subprocess.Popen(
            [program],
            executable=executable,
            stdin=subprocess.PIPE,
            stdout=env_read,
            cwd=home,
            env=child_env,
        )
    except OSError:
        os.close(env_write)
        return QueueResult(codes.close_text(codes.CANNOT_EXEC), 0, None)
    finally:
        os.close(env_read)
    assert proc.stdin is not None
    write_failed = not _send(proc.stdin, message)
    with open(env_write, "wb", buffering=0) as fde:
        write_failed = not _send(fde, envelope) or write_failed
    returncode = proc.wait()
    return QueueResult(codes.status_text(returncode, write_failed=write_failed), proc.pid, None)


def _send(stream: IO[bytes], data: bytes) -> bool:
    """Write all of ``data`` and close; False if the reader went away (qmail.c flagerr)."""
    ok = True
    try:
        stream.write(data)
        stream.flush()
    except OSError:
        ok = False
    finally:
        with suppress(OSError):
            stream.close()
    return ok
