"""tcprulescheck RULES.cdb: say what tcpserver would do (ucspi-tcp 0.88).

Takes the client from the environment as tcpserver would set it:
TCPREMOTEIP (default ``0.0.0.0``), TCPREMOTEHOST, TCPREMOTEINFO. Prints
``rule KEY:`` and what the matching rule does, line for line as
tcprulescheck.c prints it, or ``default:`` and ``allow connection`` when no
rule matches.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import BinaryIO

from server import strerr
from server.cdb import CdbError, Reader
from server.errors import EXIT_OK, EXIT_PERM, EXIT_TEMP
from server.programs import ProgramContext
from server.tcp.rules import Decision, lookup, to_bytes

FATAL = "tcprulescheck: fatal: "
USAGE = "tcprulescheck: usage: tcprulescheck rules.cdb"


def report(decision: Decision | None) -> bytes:
    """The lines tcprulescheck prints for a lookup's result."""
    if decision is None:
        return b"default:\nallow connection\n"
    out = b"rule " + to_bytes(decision.key) + b":\n"
    for entry in decision.entries:
        if entry[:1] == b"D":
            return out + b"deny connection\n"
        if entry[:1] == b"+":
            out += b"set environment variable " + entry[1:] + b"\n"
    return out + b"allow connection\n"


def _fatal(ctx: ProgramContext, path: str, err: int | None) -> int:
    return strerr.die_sys(ctx.stderr, EXIT_TEMP, FATAL, f"unable to read {path}: ", err=err)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if len(argv) < 2:
        return strerr.die(ctx.stderr, EXIT_PERM, USAGE)
    path = argv[1]
    ip = env.get("TCPREMOTEIP", "0.0.0.0")
    full = ctx.path(path)
    host, info = env.get("TCPREMOTEHOST"), env.get("TCPREMOTEINFO")
    try:
        decision = lookup(Reader.open(full), ip, host, info)
    except OSError as exc:
        return _fatal(ctx, path, exc.errno)
    except CdbError:  # djb's cdb_read fails a short file with error_proto
        return _fatal(ctx, path, errno.EPROTO)
    stdout.write(report(decision))
    stdout.flush()
    return EXIT_OK
