"""tcp-env [-rR] [-t timeout] program [arg ...]: qmail's TCP environment setter.

As tcp-env.c and tcp-env(1): when PROTO is not already ``TCP``, it takes the
addresses of the TCP connection on stdin and sets PROTO, TCPLOCALPORT,
TCPLOCALIP, TCPLOCALHOST, TCPREMOTEPORT, TCPREMOTEIP, TCPREMOTEHOST and (with
``-r``, the default, giving up after ``-t`` seconds, 30) TCPREMOTEINFO; then
it runs the program. Host names are lower-cased; a temporary DNS failure
gives ``softdnserror``; no name removes the variable. Every failure exits 111
without a message, as tcp-env.c's die() does.

The program runs in this process when it is one of qmail's programs and the
context runs programs in-process (the simulator); otherwise as a process
with our stdin and stdout.
"""

from __future__ import annotations

import asyncio
import getopt
import os
import socket
import subprocess
from collections.abc import Mapping
from typing import BinaryIO

from server.errors import EXIT_TEMP
from server.programs import PROGRAMS, ProgramContext, run
from server.tcp import ident

DEFAULT_TIMEOUT = 30  # tcp-env.c
SOFT = "softdnserror"


def reverse_name(ip: str) -> str | None:
    """dns_ptr as tcp-env uses it: the name lower-cased, ``softdnserror``, or None."""
    try:
        name, _ = socket.getnameinfo((ip, 0), socket.NI_NAMEREQD)
    except socket.gaierror as exc:
        return SOFT if exc.errno == socket.EAI_AGAIN else None
    except OSError:
        return SOFT
    return name.lower()


def connection_env(
    env: Mapping[str, str], sock: socket.socket, remote_info: bool, timeout: int
) -> dict[str, str]:
    """tcp-env's environment for the connection ``sock``."""
    out = dict(env)
    if out.get("PROTO") == "TCP":  # already set up: trust it (tcp-env(1))
        return out
    local_ip, local_port = sock.getsockname()[:2]
    remote_ip, remote_port = sock.getpeername()[:2]
    out["PROTO"] = "TCP"
    out["TCPLOCALPORT"] = str(local_port)
    out["TCPLOCALIP"] = local_ip
    _put(out, "TCPLOCALHOST", reverse_name(local_ip))
    out["TCPREMOTEPORT"] = str(remote_port)
    out["TCPREMOTEIP"] = remote_ip
    _put(out, "TCPREMOTEHOST", reverse_name(remote_ip))
    out.pop("TCPREMOTEINFO", None)
    if remote_info:
        info = asyncio.run(ident.lookup((remote_ip, remote_port), (local_ip, local_port), timeout))
        _put(out, "TCPREMOTEINFO", info)
    return out


def _put(env: dict[str, str], name: str, value: str | None) -> None:
    if value is None:
        env.pop(name, None)
    else:
        env[name] = value


def _options(argv: list[str]) -> tuple[bool, int, list[str]]:
    opts, rest = getopt.getopt(argv[1:], "rRt:")
    remote_info, timeout = True, DEFAULT_TIMEOUT
    for opt, arg in opts:
        if opt == "-t":
            digits = len(arg) - len(arg.lstrip("0123456789"))
            timeout = int(arg[:digits]) if digits else 0
        else:
            remote_info = opt == "-r"
    return remote_info, timeout, rest


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    try:
        remote_info, timeout, program = _options(argv)
    except getopt.GetoptError:
        return EXIT_TEMP
    if not program:
        return EXIT_TEMP
    try:
        if env.get("PROTO") == "TCP":
            new_env = dict(env)
        else:
            with socket.socket(fileno=os.dup(stdin.fileno())) as sock:
                new_env = connection_env(env, sock, remote_info, timeout)
    except (OSError, ValueError):
        return EXIT_TEMP
    name = os.path.basename(program[0])
    if ctx.inprocess and name in PROGRAMS:
        return run(name, [name, *program[1:]], new_env, stdin, stdout, ctx)
    stdout.flush()
    try:
        code = subprocess.run(program, env=new_env, stdin=stdin, stdout=stdout).returncode
    except OSError:  # execvp failed: die()
        return EXIT_TEMP
    return code if code >= 0 else EXIT_TEMP
