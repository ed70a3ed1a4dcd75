"""checkpassword: ours, with users from a file, speaking DJB's interface.

The interface (cr.yp.to/checkpwd/interface.html), which qmail-popup relies
on: ``checkpassword PROG [ARGS...]`` reads at most 512 bytes from
descriptor 3 up to end of file: ``user\\0password\\0timestamp\\0``. A wrong
user or password exits 1; a temporary trouble (the table cannot be read, the
home cannot be entered) exits 111; misuse (no PROG, malformed input) exits 2.
Otherwise it changes to the user's home, sets ``USER``, ``HOME`` and
``SHELL`` and runs PROG, which takes over (as with execvp).

Users come from a file named by the environment variable
``QMAILSIM_PASSWORDS``, else ``HOME/.qmail-sim/passwords`` in the qmail home.
One user a line, ``user:password:home[:shell]``; empty lines and lines
starting with ``#`` are skipped; a relative home is below the qmail home.
An empty password never matches. Besides the plain password we accept
APOP's digest, the hex MD5 of the timestamp followed by the password (DJB's
checkpassword does not; it is here so APOP can be tested).

In-process (``ctx.inprocess``) PROG is one of our programs called with
``ctx.cwd`` set to the home instead of a real chdir; as a process it is a
real chdir and exec. Run as root, PROG runs as the owner of the user's home
(uid and gid), in a warm worker of that user or a forked child: qmail-pop3d
then reads only what that user may read.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from server import privsep, programs
from server.privsep import become, privileged
from server.runtime import for_worker

ENV_FILE = "QMAILSIM_PASSWORDS"
DEFAULT_FILE = ".qmail-sim/passwords"
#: The interface's limit: "at most 512 bytes".
MAX_INPUT = 512
DEFAULT_SHELL = "/bin/sh"

EXIT_BAD = 1
EXIT_MISUSE = 2
EXIT_TEMP = 111


@dataclass(frozen=True, kw_only=True)
class User:
    name: str
    password: str
    home: Path
    shell: str = DEFAULT_SHELL


class TableError(Exception):
    """The user table is missing or malformed: a temporary failure."""


def parse_table(text: str, base: Path) -> dict[str, User]:
    """``user:password:home[:shell]`` lines into users by name."""
    users: dict[str, User] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) not in (3, 4) or not fields[0]:
            raise TableError(f"line {number}: want user:password:home[:shell]")
        shell = fields[3] if len(fields) == 4 and fields[3] else DEFAULT_SHELL
        home = base / fields[2]  # an absolute home replaces the base
        users[fields[0]] = User(name=fields[0], password=fields[1], home=home, shell=shell)
    return users


def format_table(users: Mapping[str, tuple[str, Path]]) -> str:
    """The file the harness writes: {user: (password, home)}."""
    return "".join(f"{name}:{pw}:{home}\n" for name, (pw, home) in users.items())


def split_input(data: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``user\\0password\\0timestamp...``: None when a NUL is missing."""
    parts = data.split(b"\0", 2)
    if len(parts) < 3:
        return None
    return parts[0], parts[1], parts[2].split(b"\0", 1)[0]


def password_ok(user: User, password: bytes, timestamp: bytes) -> bool:
    stored = user.password.encode()
    if not stored:
        return False
    if hmac.compare_digest(password, stored):
        return True
    digest = hashlib.md5(timestamp + stored).hexdigest().encode()
    return bool(timestamp) and hmac.compare_digest(password.lower(), digest)


def table_path(env: Mapping[str, str], ctx: programs.ProgramContext) -> Path:
    return Path(env[ENV_FILE]) if env.get(ENV_FILE) else ctx.home / DEFAULT_FILE


def _read_fd3(ctx: programs.ProgramContext) -> bytes | int:
    """Up to 512 bytes from descriptor 3, or an exit code."""
    fd3 = ctx.fds.get(3)
    if fd3 is None:
        return EXIT_TEMP
    data = b""
    try:
        while chunk := fd3.read(MAX_INPUT + 1 - len(data)):
            data += chunk
            if len(data) > MAX_INPUT:
                return EXIT_BAD
    except OSError:
        return EXIT_TEMP
    return data


def check(data: bytes, env: Mapping[str, str], ctx: programs.ProgramContext) -> User | int:
    """The user who may log in with ``data``, or the exit code that says why not."""
    fields = split_input(data)
    if fields is None:
        return EXIT_MISUSE
    login, password, timestamp = fields
    try:
        users = parse_table(table_path(env, ctx).read_text(), ctx.home)
    except (OSError, UnicodeDecodeError, TableError):
        return EXIT_TEMP
    user = users.get(login.decode("utf-8", "surrogateescape"))
    if user is None or not password_ok(user, password, timestamp):
        return EXIT_BAD
    return user


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: programs.ProgramContext,
) -> int:
    if len(argv) < 2:
        return EXIT_MISUSE
    data = _read_fd3(ctx)
    if isinstance(data, int):
        return data
    user = check(data, env, ctx)
    if isinstance(user, int):
        return user
    if not user.home.is_dir():
        return EXIT_TEMP  # chdir() failed
    child_env = {**env, "USER": user.name, "HOME": str(user.home), "SHELL": user.shell}
    owner = _owner(user) if privileged() else None
    if ctx.inprocess:
        name = os.path.basename(argv[1])
        if not programs.is_ours(name):
            return EXIT_TEMP  # execvp() failed
        fds = {fd: f for fd, f in ctx.fds.items() if fd != 3}  # close(3)
        child = replace(ctx, cwd=user.home, fds=fds)
        prog = _Prog(name, argv[1:], child_env, child)
        if owner is not None:
            return _run_as_owner(owner, prog, stdin, stdout)
        return prog.run(stdin, stdout)
    try:
        if owner is not None:
            become(*owner)  # prot_gid, prot_uid, as DJB's checkpassword does
        os.chdir(user.home)
        for f in ctx.fds.values():
            f.close()
        os.closerange(3, 4)  # close(3): PROG gets no descriptor 3
        os.execvpe(argv[1], argv[1:], child_env)
    except OSError:
        return EXIT_TEMP
    return EXIT_TEMP  # not reached: execvpe does not return


def _owner(user: User) -> tuple[int, int] | None:
    """The uid and gid PROG runs as: the owner of the user's home (our table
    has no uid column; DJB's checkpassword takes them from passwd)."""
    try:
        st = user.home.stat()
    except OSError:
        return None
    return st.st_uid, st.st_gid


@dataclass(frozen=True)
class _Prog:
    """PROG as checkpassword runs it in process: a program of ours."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    ctx: programs.ProgramContext

    def run(self, stdin: BinaryIO, stdout: BinaryIO) -> int:
        return programs.run(self.name, self.argv, self.env, stdin, stdout, self.ctx)


def _run_as_owner(owner: tuple[int, int], prog: _Prog, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """PROG (qmail-pop3d) as the mailbox's owner, so that it reads only what
    that user may. It gets the session three ways: the simulator's (all of
    it in memory) goes to a warm worker of that user, and its output comes
    back as bytes (:func:`_in_memory`); real descriptors are kept in a forked
    child; anything else (the live server's streams, served by an event loop
    the child does not have) is relayed to a forked child through a socket
    pair."""
    if owner[0] == 0:
        return prog.run(stdin, stdout)
    if isinstance(stdin, io.BytesIO):
        return _in_memory(owner, prog, stdin, stdout)
    if _fileno(stdin) is not None and _fileno(stdout) is not None:
        return _in_child(owner, prog, stdin, stdout, frozenset())
    ours, theirs = socket.socketpair()
    with ours, theirs:
        inward = threading.Thread(target=_pump_in, args=(stdin, ours), daemon=True)
        outward = threading.Thread(target=_pump_out, args=(ours, stdout), daemon=True)
        inward.start()
        outward.start()
        with theirs.makefile("rb") as child_in, theirs.makefile("wb") as child_out:
            keep = frozenset({theirs.fileno()})
            code = _in_child(owner, prog, child_in, child_out, keep)
        theirs.close()  # the child is gone: the client sees its last words
        outward.join()
    return code


def _in_child(
    owner: tuple[int, int],
    prog: _Prog,
    stdin: BinaryIO,
    stdout: BinaryIO,
    keep: frozenset[int],
) -> int:
    """Run PROG as ``owner`` in a forked child on the session's streams."""
    fds = {fd for fd in (_fileno(stdin), _fileno(stdout)) if fd is not None}

    def work(_end: privsep.ChildEnd) -> bytes:
        code = prog.run(stdin, stdout)
        stdout.flush()
        return str(code).encode()

    result, _status = privsep.run_as(*owner, work, _no_requests, keep_fds=keep | fds)
    return EXIT_TEMP if result is None else int(result)


def _in_memory(owner: tuple[int, int], prog: _Prog, stdin: io.BytesIO, stdout: BinaryIO) -> int:
    """Run PROG as ``owner`` on a session held in memory: the client's input
    (a copy, read on from where qmail-popup stopped, in the same turns) goes
    to a warm worker of that user (server.privsep.WORKERS), as a delivery
    does; a job that cannot be pickled goes to a forked child. What PROG
    wrote to stdout and stderr comes back and is written here."""
    ctx = replace(prog.ctx, runtime=for_worker(prog.ctx.runtime), stderr=io.BytesIO())
    job = (replace(prog, ctx=ctx), stdin)
    payload = privsep.pickle_job(_SESSION, job)
    if payload is None:
        result, _status = privsep.run_as(*owner, lambda _end: _session(job), _no_requests)
    else:
        result, _status = privsep.WORKERS.start(*owner, payload, None, _no_requests).wait()
    try:  # from a process the user may have taken over: only ever bytes
        code, out, err = privsep.unpack_fields(result or b"")
        status = int(code)
    except ValueError:
        return EXIT_TEMP
    stdout.write(out)
    stdout.flush()
    prog.ctx.stderr.write(err)
    return status


#: what a worker calls with a POP3 session
_SESSION = "server.pop3.checkpassword:session_in_worker"


def session_in_worker(
    job: tuple[_Prog, io.BytesIO], _fd: int | None, _end: privsep.ChildEnd
) -> bytes:
    """In a warm worker, as the mailbox's owner: one session (:func:`_in_memory`)."""
    return _session(job)


def _session(job: tuple[_Prog, io.BytesIO]) -> bytes:
    """PROG on the client's input; its exit code, its output, its stderr."""
    prog, stdin = job
    out = io.BytesIO()
    code = prog.run(stdin, out)
    err = prog.ctx.stderr
    errors = err.getvalue() if isinstance(err, io.BytesIO) else b""
    return privsep.pack_fields([str(code).encode(), out.getvalue(), errors])


def _no_requests(_request: bytes) -> bytes:
    return b""  # PROG asks its parent nothing


def _pump_in(source: BinaryIO, sock: socket.socket) -> None:
    """The client's bytes to the child, until the client or the child is gone."""
    read = getattr(source, "read1", source.read)
    with contextlib.suppress(OSError, ValueError):
        while chunk := read(4096):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)


def _pump_out(sock: socket.socket, sink: BinaryIO) -> None:
    """The child's replies to the client, until the child closes its end."""
    with contextlib.suppress(OSError, ValueError):
        while chunk := sock.recv(4096):
            sink.write(chunk)
            sink.flush()


def _fileno(stream: BinaryIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
