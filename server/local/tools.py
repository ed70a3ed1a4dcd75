"""What the small ``.qmail`` helper programs share (bouncesaying, except,
condredirect, forward, preline): running a child program on the message,
qmail's ``strerr`` messages, and forwarding through qmail-queue.

A child is run with ``execvp`` semantics (PATH search), the message on its
standard input and its output passed on to ours. It "could not be run" with
exit 111 when the reason is temporary (error_temp.c) and 100 otherwise, as
these programs' forked children ``_exit`` after a failed ``execvp``.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from server.local import replies
from server.local.forwarding import Invoker
from server.local.getpw import ALIAS_USER
from server.programs import Main, ProgramContext


class Die(Exception):
    """strerr_die: print ``text`` and a newline on stderr, exit ``code``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


def need_env(env: Mapping[str, str], name: str, fatal: str, code: int = 100) -> str:
    """env_get(name), or strerr_die2x(code, FATAL, "NAME not set") without it."""
    value = env.get(name)
    if value is None:
        raise Die(code, f"{fatal}{name} not set")
    return value


def sys_text(prefix: str, err: int) -> str:
    """strerr_die2sys: the text followed by qmail's wording of errno."""
    return prefix + replies.error_str(err)


def run_child(
    argv: Sequence[str], env: Mapping[str, str], message: bytes, stdout: BinaryIO
) -> int | None:
    """Run ``argv`` on ``message``; its exit code, or None when it was killed."""
    try:
        return exec_child(argv, env, message, stdout)
    except OSError as exc:
        return 111 if replies.error_temp(exc.errno or 0) else 100


def exec_child(
    argv: Sequence[str], env: Mapping[str, str], message: bytes, stdout: BinaryIO
) -> int | None:
    """As :func:`run_child`, but OSError when the program cannot be started."""
    proc = subprocess.run(
        list(argv),
        input=message,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env),
        check=False,
    )
    stdout.write(proc.stdout)
    stdout.flush()
    return proc.returncode if proc.returncode >= 0 else None


def child_verdict(fatal: str, code: int | None) -> int | None:
    """The shared switch: crashed or 111 dies; 0 gives 0; others give None."""
    if code is None:
        raise Die(111, fatal + "child crashed")
    if code == 111:
        raise Die(111, fatal + "temporary child error")
    return 0 if code == 0 else None


def invoker_for(env: Mapping[str, str], ctx: ProgramContext) -> Invoker:
    """qmail-queue would see the delivering user's uid: ``alias`` for the alias user."""
    return "alias" if env.get("USER") == ALIAS_USER else ctx.runtime.uid


def queue(
    ctx: ProgramContext,
    env: Mapping[str, str],
    fatal: str,
    data: bytes,
    sender: str,
    recipients: Sequence[str],
) -> int:
    """qmail_open .. qmail_close; the qp on success, Die with qmail-queue's text otherwise."""
    from server.queue.client import queue_message

    try:
        result = queue_message(ctx, env, data, sender, recipients, invoker=invoker_for(env, ctx))
    except OSError as exc:
        raise Die(111, sys_text(fatal + "unable to fork: ", exc.errno or 0)) from exc
    if result.error:
        raise Die(100 if result.error.startswith("D") else 111, fatal + result.error[1:])
    return result.qp


def finish(ctx: ProgramContext, die: Die) -> int:
    ctx.stderr.write(die.text.encode("latin-1", "replace") + b"\n")
    ctx.stderr.flush()
    return die.code


def handles_die(body: Main) -> Main:
    """A program's main in which a :class:`Die` anywhere is :func:`finish`: the
    message on stderr, then the exit (strerr_die in each of these programs)."""

    @functools.wraps(body)
    def main(
        argv: list[str],
        env: Mapping[str, str],
        stdin: BinaryIO,
        stdout: BinaryIO,
        ctx: ProgramContext,
    ) -> int:
        try:
            return body(argv, env, stdin, stdout, ctx)
        except Die as die:
            return finish(ctx, die)

    return main


def read_all(stdin: BinaryIO, fatal: str) -> bytes:
    try:
        return stdin.read()
    except OSError as exc:
        raise Die(111, sys_text(fatal + "unable to read message: ", exc.errno or 0)) from exc
