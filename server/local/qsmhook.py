"""qsmhook [ -DFlMmnPs ] [ -x prefix ] program [ arg ... ]: run a sendmail-style
mailer from a ``.qmail`` file (qsmhook.c; it has no man page).

It needs ``$DTLINE``, ``$RPLINE``, ``$UFLINE``, ``$LOCAL``, ``$HOST`` and
``$SENDER`` ("incorrect usage" otherwise, exit 100). Options, as sendmail's
mailer flags:

* ``-n``: no ``$UFLINE`` (the ``From `` line) before the message;
* ``-P``: put ``$RPLINE`` (``Return-Path:``) before it;
* ``-l``: put ``$DTLINE`` (``Delivered-To:``) before it;
* ``-x prefix``: strip ``prefix`` (any case) from the front of ``$LOCAL``;
* ``-D -F -M -m -s``: accepted and ignored.

In each argument ``%g`` becomes ``$SENDER``, ``%h`` ``$HOST``, ``%u`` the
(stripped) ``$LOCAL`` and ``%%`` a ``%``; a ``%`` before any other character,
or at the end, is dropped together with that character. The program gets
the chosen lines and then the message on its standard input; qsmhook exits
with its exit code, 111 ("temporary problem") when it crashed or could not be
started for a temporary reason, 100 ("command not found") otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import BinaryIO

from server.inject.getopt import Getopt, GetoptError
from server.local import replies
from server.local.tools import Die, exec_child, handles_die
from server.programs import ProgramContext

USAGE = "qsmhook: fatal: incorrect usage"
TEMP = "qsmhook: fatal: temporary problem"
READ = "qsmhook: fatal: unable to read message"
BADCMD = "qsmhook: fatal: command not found"
#: main()'s env_get() calls, in order: the first one missing is a usage error.
NEEDED = ("DTLINE", "RPLINE", "UFLINE", "LOCAL", "HOST", "SENDER")


def substitute(arg: str, sender: str, host: str, recip: str) -> str:
    """qsmhook.c's ``%`` escapes in one argument."""
    values = {"%": "%", "g": sender, "h": host, "u": recip}
    out = []
    escape = False
    for ch in arg:
        if escape:
            out.append(values.get(ch, ""))
            escape = False
        elif ch == "%":
            escape = True
        else:
            out.append(ch)
    return "".join(out)


def strip_prefix(recip: str, prefix: str) -> str:
    """``-x``: case_starts(recip, prefix) then skip it."""
    if recip[: len(prefix)].lower() == prefix.lower():
        return recip[len(prefix) :]
    return recip


def options(argv: list[str], env: Mapping[str, str]) -> tuple[str, list[str]]:
    """The lines to put first and the program's argv, substituted."""
    flags = {"n": False, "P": False, "l": False}
    recip = env["LOCAL"]
    opts = Getopt(argv, "DFlMmnPsx:")
    try:
        for letter, value in opts:
            if letter == "x":
                recip = strip_prefix(recip, value or "")
            elif letter in flags:
                flags[letter] = True
    except GetoptError as exc:
        raise Die(100, str(exc)) from exc  # sgetopt's complaint, then _exit(100)
    args = opts.rest
    if not args:
        raise Die(100, USAGE)
    lines = "".join(
        env[name]
        for name, on in (("UFLINE", not flags["n"]), ("RPLINE", flags["P"]), ("DTLINE", flags["l"]))
        if on
    )
    return lines, [substitute(arg, env["SENDER"], env["HOST"], recip) for arg in args]


@handles_die
def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if any(name not in env for name in NEEDED):
        raise Die(100, USAGE)
    lines, args = options(argv, env)
    try:
        message = stdin.read()
    except OSError as exc:
        raise Die(111, READ) from exc
    try:
        code = exec_child(args, env, os.fsencode(lines) + message, stdout)
    except OSError as exc:  # the child's execvp() failed
        temporary = replies.error_temp(exc.errno or 0)
        raise Die(111, TEMP) if temporary else Die(100, BADCMD) from exc
    if code is None:
        raise Die(111, TEMP)
    return code
