"""qmail-popup: read a POP3 user name and password, then run checkpassword.

``qmail-popup HOSTNAME SUBPROGRAM [ARGS...]`` (qmail-popup(8)). It greets
with ``+OK <pid.time@HOSTNAME>``, answers USER/PASS/APOP/QUIT/NOOP through
:class:`server.pop3.core.Popup`, and on PASS or APOP runs SUBPROGRAM with
descriptors 0 and 1 unchanged, descriptor 2 writing to the network too, and
descriptor 3 reading ``user\\0password\\0<timestamp>\\0``. When the child
exits nonzero it says ``-ERR authorization failed``; if it was killed by a
signal, ``-ERR aack, child crashed``. qmail-popup itself always exits 1
(its die() is ``_exit(1)``), after QUIT, at end of input, or after the child.

With ``ctx.inprocess`` the child is one of our programs called as a Python
function (SUBPROGRAM's base name looked up in server.programs), reading the
rest of the same stdin after what qmail-popup's 128-byte reads took from it
(server.pop3.stream); otherwise it is a real process on a real pipe, so a
real checkpassword (checkpassword-pam, vchkpw) can stand in for ours.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import replace
from io import BytesIO, UnsupportedOperation
from typing import BinaryIO

from server import programs
from server.pop3 import replies
from server.pop3.core import Authenticate, LineTooLong, Popup, Reply, State
from server.pop3.stream import ChunkReader, say

#: qmail-popup's exit code, whatever happened (die() in qmail-popup.c).
EXIT = 1


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: programs.ProgramContext,
) -> int:
    if len(argv) < 3:
        say(stdout, replies.USAGE)
        return EXIT
    hostname = argv[1].encode("utf-8", "surrogateescape")
    childargs = argv[2:]
    session = Popup(hostname=hostname, pid=ctx.runtime.next_pid(), now=ctx.runtime.now())
    say(stdout, session.greeting().data)
    chunks = _chunk_reader(stdin)
    while session.state is State.AUTHORIZATION:
        try:
            command = chunks.read_command()
        except LineTooLong:
            return EXIT  # commands() out of memory: die() without a word
        if command is None:
            return EXIT
        for event in session.handle(command):
            if isinstance(event, Reply):
                say(stdout, event.data)
            elif isinstance(event, Authenticate):
                verdict = _run_child(childargs, event, env, stdin, stdout, ctx)
                if verdict:
                    say(stdout, verdict)
    return EXIT


def _chunk_reader(stdin: BinaryIO) -> ChunkReader:
    """qmail-popup.c's 128-byte reads: of descriptor 0 when stdin is one, else
    of what has arrived on the stream (its read1())."""
    try:
        return ChunkReader.on_fd(stdin.fileno())
    except (OSError, ValueError, UnsupportedOperation):
        return ChunkReader.on_stream(stdin)


def _run_child(
    childargs: list[str],
    auth: Authenticate,
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: programs.ProgramContext,
) -> bytes:
    """doanddie(): run the child; return what qmail-popup says after it."""
    if ctx.inprocess:
        code = _run_inprocess(childargs, auth, env, stdin, stdout, ctx)
    else:
        code = _run_process(childargs, auth, env, stdout)
    if code < 0:
        return replies.CHILD_CRASHED
    if code:
        return replies.AUTH_FAILED
    return b""


def _run_inprocess(
    childargs: list[str],
    auth: Authenticate,
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: programs.ProgramContext,
) -> int:
    name = os.path.basename(childargs[0])
    if not programs.is_ours(name):
        return 1  # execvp() failed: the child's _exit(1)
    fd3 = BytesIO(auth.fd3())
    # fd_copy(2,1): the child's diagnostics go to the client.
    child = replace(ctx, fds={**ctx.fds, 3: fd3}, stderr=stdout)
    with fd3:
        return programs.run(name, list(childargs), env, stdin, stdout, child)


def _run_process(
    childargs: list[str], auth: Authenticate, env: Mapping[str, str], stdout: BinaryIO
) -> int:
    """The real thing: a pipe on descriptor 3, descriptor 2 a copy of 1."""
    stdout.flush()
    os.dup2(1, 2)
    read_end, write_end = os.pipe()
    if read_end != 3:
        os.dup2(read_end, 3)
        os.close(read_end)
    try:
        child = subprocess.Popen(childargs, env=dict(env), pass_fds=(3,), close_fds=True)
    except OSError:
        os.close(3)
        os.close(write_end)
        return 1  # execvp() failed in the child: _exit(1)
    os.close(3)
    try:
        with open(write_end, "wb", closefd=True) as pipe:
            pipe.write(auth.fd3())
    except BrokenPipeError:
        pass  # the child did not read it; its exit code tells the rest
    return child.wait()
