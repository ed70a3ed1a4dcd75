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

:func:`open_queue` is the same choice for a message that arrives in pieces
(qmail-smtpd's DATA): a :class:`QueueStream` takes them with ``put`` as
qmail_put() feeds qmail-queue's pipe, and each goes on at once to the
program's pipe, the service's socket or our writer's ``mess/N``, so the
message is never held whole. ``close`` gives the envelope and the result;
``abandon`` is qmail-smtpd giving up on the message (databytes, too many
hops, the client gone): the queue program sees its input end without an
envelope and nothing is queued.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from server.programs import ProgramContext
from server.queue import codes
from server.queue.core import MessageWriter, QueueFailure, open_message, write_queue
from server.queue.envelope import encode_envelope, parse_envelope
from server.queue.invoker import INVOKER_ENV, Invoker, invoker_env_value, make_job
from server.queue.service import ServiceStream, queue_via

__all__ = ["Invoker", "QueueResult", "QueueStream", "open_queue", "queue_message"]

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


class QueueStream(Protocol):
    """qmail.c's ``struct qmail`` between qmail_open() and qmail_close()."""

    @property
    def qp(self) -> int:
        """qmail_qp(): the queue run's pid, for "250 ok T qp N"."""
        ...

    def put(self, data: bytes) -> None:
        """qmail_put(): more of the message, passed on at once."""

    def close(self, sender: str, recipients: Sequence[str]) -> QueueResult:
        """qmail_from(), qmail_to(), qmail_close(): the envelope, then the result."""
        ...

    def abandon(self) -> None:
        """No envelope will come: the queue run ends and nothing is queued."""


def open_queue(ctx: ProgramContext, env: Mapping[str, str], *, invoker: Invoker) -> QueueStream:
    """qmail_open(): a queue run chosen as :func:`queue_message` chooses it."""
    if "QMAILQUEUE" in env:
        return ProgramStream(env["QMAILQUEUE"], ctx.home, env, invoker)
    if ctx.queue_socket is not None:
        return _ServiceQueueStream(ServiceStream(ctx.queue_socket))
    if ctx.inprocess:
        return _InprocessStream.open(ctx, env, invoker)
    return ProgramStream(QMAIL_QUEUE, ctx.home, env, invoker)


@dataclass
class _InprocessStream:
    """Our writer in this process: each piece is appended to ``mess/N``."""

    qp: int
    writer: MessageWriter | None
    failure: int = codes.OK  # qmail-queue's exit before the message (61-64)

    @classmethod
    def open(
        cls, ctx: ProgramContext, env: Mapping[str, str], invoker: Invoker
    ) -> _InprocessStream:
        pid = ctx.runtime.next_pid()
        try:
            job = make_job(ctx, env, pid, invoker)
            writer = open_message(job, ctx.runtime.fileops, fsync=ctx.runtime.fsync)
        except QueueFailure as failure:
            return cls(pid, None, failure.code)
        return cls(pid, writer)

    def put(self, data: bytes) -> None:
        if self.writer is not None:
            self.writer.write(data)

    def close(self, sender: str, recipients: Sequence[str]) -> QueueResult:
        if self.writer is None:
            return QueueResult(codes.close_text(self.failure), self.qp, None)
        envelope = encode_envelope(sender, recipients)
        try:
            msgid = self.writer.finish(b"", lambda: parse_envelope(envelope))
        except QueueFailure as failure:
            return QueueResult(codes.close_text(failure.code), self.qp, None)
        return QueueResult("", self.qp, msgid)

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.abandon()


@dataclass
class _ServiceQueueStream:
    """The queue service (split home): pieces go out on its socket."""

    service: ServiceStream
    qp: int = 0  # the service's pid for the run comes with its answer

    def put(self, data: bytes) -> None:
        self.service.put(data)

    def close(self, sender: str, recipients: Sequence[str]) -> QueueResult:
        code, self.qp = self.service.close(encode_envelope(sender, recipients))
        return QueueResult(codes.close_text(code), self.qp, None)

    def abandon(self) -> None:
        self.service.abandon()


class ProgramStream:
    """A queue program as a process: pieces go down its fd 0 as qmail.c's pipe.

    A program that cannot start is exit 120 at close; one that stops
    reading is qmail.c's ``flagerr`` (the rest is dropped, and an exit 0
    becomes "read error").
    """

    def __init__(self, program: str, home: Path, env: Mapping[str, str], invoker: Invoker) -> None:
        executable = program if os.path.isabs(program) else str(home / program)
        child_env = {**env, INVOKER_ENV: invoker_env_value(invoker)}
        env_read, env_write = os.pipe()
        self.write_failed = False
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self.proc = subprocess.Popen(
                [program],
                executable=executable,
                stdin=subprocess.PIPE,
                stdout=env_read,
                cwd=home,
                env=child_env,
            )
        except OSError:
            os.close(env_write)
            env_write = -1
        finally:
            os.close(env_read)
        self._fde = env_write

    @property
    def qp(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def put(self, data: bytes) -> None:
        proc = self.proc
        if proc is None or self.write_failed or not data:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
        except OSError:
            self.write_failed = True

    def close(self, sender: str, recipients: Sequence[str]) -> QueueResult:
        return self.close_envelope(encode_envelope(sender, recipients))

    def close_envelope(self, envelope: bytes) -> QueueResult:
        """End the message, write the envelope on fd 1, wait for the exit code."""
        proc = self.proc
        if proc is None:
            return QueueResult(codes.close_text(codes.CANNOT_EXEC), 0, None)
        assert proc.stdin is not None
        self.write_failed = not _send(proc.stdin, b"") or self.write_failed
        with open(self._fde, "wb", buffering=0) as fde:
            self.write_failed = not _send(fde, envelope) or self.write_failed
        returncode = proc.wait()
        return QueueResult(
            codes.status_text(returncode, write_failed=self.write_failed), proc.pid, None
        )

    def abandon(self) -> None:
        """Close both pipes without an envelope and wait: qmail-queue exits 54."""
        proc = self.proc
        if proc is None:
            return
        assert proc.stdin is not None
        _send(proc.stdin, b"")
        os.close(self._fde)
        proc.wait()


def run_queue_program(
    program: str,
    home: Path,
    env: Mapping[str, str],
    message: bytes,
    envelope: bytes,
    invoker: Invoker,
) -> QueueResult:
    """qmail_open/put/from/to/close against a queue program run as a process."""
    stream = ProgramStream(program, home, env, invoker)
    stream.put(message)
    return stream.close_envelope(envelope)


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
