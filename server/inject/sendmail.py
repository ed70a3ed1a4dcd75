"""sendmail: the Sendmail-compatible front end to qmail-inject (sendmail.c).

``sendmail [-t] [-fsender] [-Fname] [-bp] [-bs] [arg ...]`` runs
``qmail-inject -a -f sender -- arg ...`` (``-H`` instead of ``-a`` with
``-t``, so header and argument recipients both count). Sendmail's other
options (-v -i -m -e -p -o -B -x, -E/-J with their argument) are accepted and
ignored. ``-bp`` (or the name ``mailq``) runs qmail-qread; ``-bs`` runs
qmail-smtpd on stdin/stdout, with a local client's environment when
``PROTO`` is not set already (RELAYCLIENT empty, DATABYTES=0, TCP* of
127.0.0.1/localhost, TCPREMOTEINFO=sendmail-bs); ``-bm`` is the default.
Anything else is a usage error (exit 100); there is no -q.

netqmail's sendmail also derives ``QMAILUSER``/``QMAILHOST`` from ``-f``
(dropping any name from -F and the environment), so the From: line
qmail-inject makes matches the envelope sender.

In-process the programs are called as functions; as a process, sendmail
execs ``HOME/bin/PROGRAM`` as sendmail.c execv's ``bin/PROGRAM``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import BinaryIO

from server import programs
from server.errors import EXIT_PERM, EXIT_TEMP
from server.inject.getopt import Getopt, GetoptError, progname

USAGE = b"sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]\n"
SPEC = "vimte:f:p:o:B:F:EJxb:"
#: sendmail.c smtpd(): the environment of a local SMTP client.
BS_ENV: Mapping[str, str] = {
    "RELAYCLIENT": "",
    "DATABYTES": "0",
    "PROTO": "TCP",
    "TCPLOCALIP": "127.0.0.1",
    "TCPLOCALHOST": "localhost",
    "TCPREMOTEIP": "127.0.0.1",
    "TCPREMOTEHOST": "localhost",
    "TCPREMOTEINFO": "sendmail-bs",
}


class Usage(Exception):
    pass


def _say(ctx: programs.ProgramContext, text: bytes) -> None:
    ctx.stderr.write(text)
    ctx.stderr.flush()


def sender_env(env: Mapping[str, str], sender: str) -> dict[str, str]:
    """do_sender(): no names from the environment; user and host from ``sender``."""
    out = {k: v for k, v in env.items() if k not in _SENDER_DROPS}
    user, at, host = sender.rpartition("@")
    if not at:
        out["QMAILUSER"] = sender
    else:
        out["QMAILHOST"] = host
        out["QMAILUSER"] = user
    return out


_SENDER_DROPS = frozenset({"QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"})


def _start(
    name: str,
    args: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: programs.ProgramContext,
) -> int:
    """execv("bin/NAME", ...), in-process or for real."""
    argv = [f"bin/{name}", *args]
    if ctx.inprocess:
        return programs.run(name, argv, env, stdin, stdout, ctx)
    stdout.flush()
    with contextlib.suppress(OSError):
        os.execve(ctx.home / "bin" / name, argv, dict(env))
    _say(ctx, f"sendmail: fatal: unable to run {name}\n".encode())
    return EXIT_TEMP


def _options(
    argv: list[str], env: dict[str, str]
) -> tuple[str | None, bool, str | None, list[str]]:
    """(the -b mode, -t given, -f sender, operands); MAILNAME from -F goes into ``env``."""
    mode: str | None = None
    flag_t = False
    sender: str | None = None
    opts = Getopt(argv, SPEC)
    for letter, arg in opts:
        if letter == "t":
            flag_t = True
        elif letter == "f":
            sender = arg
        elif letter == "F" and arg is not None:
            env["MAILNAME"] = arg
        elif letter in "EJ":
            opts.skip_word()  # Sony NEWS-OS: an optional argument
        elif letter == "b":
            kind = (arg or "")[:1]
            if kind not in ("m", "p", "s"):
                raise Usage
            if kind != "m":
                return kind, flag_t, sender, opts.rest
    return mode, flag_t, sender, opts.rest


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: programs.ProgramContext,
) -> int:
    child_env = dict(env)
    try:
        mode, flag_t, sender, rest = _options(argv, child_env)
    except GetoptError as exc:
        _say(ctx, str(exc).encode() + b"\n" + USAGE)
        return EXIT_PERM
    except Usage:
        _say(ctx, USAGE)
        return EXIT_PERM
    if mode == "p":
        return _start("qmail-qread", [], child_env, stdin, stdout, ctx)
    if mode == "s":
        if "PROTO" not in child_env:
            child_env.update(BS_ENV)
        return _start("qmail-smtpd", [], child_env, stdin, stdout, ctx)
    name = progname(argv[0]) if argv else ""
    if name == "mailq":
        return _start("qmail-qread", [], child_env, stdin, stdout, ctx)
    if name == "newaliases":
        _say(ctx, b"sendmail: fatal: please use fastforward/newaliases instead\n")
        return EXIT_PERM
    args = ["-H" if flag_t else "-a"]
    if sender is not None:
        args += ["-f", sender]
        child_env = sender_env(child_env, sender)
    return _start("qmail-inject", [*args, "--", *rest], child_env, stdin, stdout, ctx)
