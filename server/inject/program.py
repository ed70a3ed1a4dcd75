"""qmail-inject: read a message, fix up its header, hand it to qmail-queue.

``qmail-inject [-nNaAhH] [-fsender] [recip ...]`` (qmail-inject(8)). With
recipients on the command line it sends to them (-a), without them to the
header's (-h); -H uses both. -n prints the message, with the envelope
sender as ``Return-Path:``, instead of queueing it. The controls
defaultdomain, defaulthost, plusdomain and idhost (each defaulting to ``me``)
and their ``QMAIL...`` environment variables are read first; then the
options; then the message (:mod:`server.inject.core` does the work).

Exit codes: 0; 100 for bad usage, a header that does not parse or a
permanent queue error; 111 for temporary errors. Errors are one line on
stderr, ``qmail-inject: fatal: ...``. The message is queued as "invoked by
uid N" with the runtime's uid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from server.control import ControlDir
from server.errors import EXIT_PERM, EXIT_TEMP, TempFail
from server.inject import headers
from server.inject.addresses import Names
from server.inject.core import Identity, InjectError, Injector
from server.inject.getopt import Getopt, GetoptError
from server.programs import ProgramContext

PREFIX = b"qmail-inject: fatal: "


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def read_mft(env: Mapping[str, str], ctx: ProgramContext) -> frozenset[bytes] | None:
    """mft_init(): QMAILMFTFILE's lines (control file rules), lower-cased; None if unset/missing."""
    name = env.get("QMAILMFTFILE")
    if name is None:
        return None
    path = ctx.path(name)
    lines = ControlDir(path.parent).readfile(path.name)
    if lines is None:
        return None
    return frozenset(_bytes(line).lower() for line in lines)


def _fail(ctx: ProgramContext, text: bytes, code: int) -> int:
    ctx.stderr.write(PREFIX + text)
    ctx.stderr.flush()
    return code


def _options(argv: list[str], injector: Injector) -> tuple[str, bool, list[str]]:
    """getopt "aAhHnNf:": (recipient strategy, queue?, operands)."""
    strategy, queue = "default", True
    opts = Getopt(argv, "aAhHnNf:")
    for letter, arg in opts:
        if letter == "f" and arg is not None:
            injector.option_sender(_bytes(arg))
        elif letter == "n":
            queue = False
        elif letter == "N":
            queue = True
        else:
            strategy = {"a": "args", "A": "default", "h": "header", "H": "both"}[letter]
    rest = opts.rest
    if strategy == "default":
        strategy = "args" if rest else "header"
    return strategy, queue, rest


def inject(
    argv: list[str], env: Mapping[str, str], message: bytes, ctx: ProgramContext
) -> tuple[bytes, bytes, list[bytes], bool]:
    """Everything but the I/O: (message, sender, recipients, queue?)."""
    try:
        mft = read_mft(env, ctx)
        names = Names.read(ControlDir(ctx.home / "control"), env)
    except TempFail as exc:
        raise InjectError(b"read error\n", EXIT_TEMP) from exc
    injector = Injector(
        identity=Identity.from_env(env),
        names=names,
        now=ctx.runtime.now(),
        pid=ctx.runtime.next_pid(),
        patches=ctx.patches,
        env=env,
        home=ctx.home,
        mft=mft,
    )
    strategy, queue, rest = _options(argv, injector)
    if strategy != "header":
        for arg in rest:
            injector.argument_recipient(_bytes(arg))
    split = headers.split(message)
    for line in split.fields:
        injector.field(line)
    head = injector.finish(print_return_path=not queue)
    assert injector.sender is not None
    recipients = injector.recipients(from_header=strategy != "args")
    return head + split.body, injector.sender, recipients, queue


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    try:
        message, sender, recipients, queue = inject(argv, env, stdin.read(), ctx)
    except GetoptError as exc:
        ctx.stderr.write(_bytes(str(exc)) + b"\n")
        ctx.stderr.flush()
        return EXIT_PERM
    except InjectError as exc:
        return _fail(ctx, exc.text, exc.code)
    except OSError:
        return _fail(ctx, b"read error\n", EXIT_TEMP)
    if not queue:
        stdout.write(message)
        stdout.flush()
        return 0
    from server.queue.client import queue_message

    result = queue_message(
        ctx,
        env,
        message,
        _text(sender),
        [_text(r) for r in recipients],
        invoker=ctx.runtime.uid,
    )
    if result.error:
        code = EXIT_PERM if result.error.startswith("D") else EXIT_TEMP
        return _fail(ctx, _bytes(result.error[1:]) + b"\n", code)
    return 0
