"""maildirmake DIR: make a new, empty Maildir (maildirmake.c, maildirmake(1)).

qmail's program sets umask 077 and makes ``DIR``, ``DIR/tmp``, ``DIR/new`` and
``DIR/cur`` with mode 0700; it refuses a directory that already exists. We
do not touch the process umask (the harness runs programs in-process and the
umask is process-wide); we chmod each new directory to 0700 instead, which
gives the same modes. Errors are qmail's strerr lines with error_str's texts
(:func:`error_str`): ``maildirmake: fatal: unable to mkdir DIR: file already
exists`` and exit 111; no argument is exit 100 with the usage line.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import BinaryIO

from server.errors import EXIT_OK, EXIT_PERM, EXIT_TEMP
from server.programs import ProgramContext

FATAL = "maildirmake: fatal: "
USAGE = "maildirmake: usage: maildirmake name"
MODE = 0o700

# error_str.c's texts, by errno name; the first name listed for a number wins,
# as in error_str.c's chain of ifs (EWOULDBLOCK is EAGAIN on Linux).
_ERROR_TEXTS: tuple[tuple[str, str], ...] = (
    ("EINTR", "interrupted system call"),
    ("ENOMEM", "out of memory"),
    ("ENOENT", "file does not exist"),
    ("ETXTBSY", "text busy"),
    ("EIO", "input/output error"),
    ("EEXIST", "file already exists"),
    ("ETIMEDOUT", "timed out"),
    ("EINPROGRESS", "operation in progress"),
    ("EAGAIN", "temporary failure"),
    ("EWOULDBLOCK", "input/output would block"),
    ("EPIPE", "broken pipe"),
    ("EPERM", "permission denied"),
    ("EACCES", "access denied"),
    ("ESRCH", "no such process"),
    ("ENXIO", "device not configured"),
    ("E2BIG", "argument list too long"),
    ("ENOEXEC", "exec format error"),
    ("EBADF", "file descriptor not open"),
    ("ECHILD", "no child processes"),
    ("EDEADLK", "operation would cause deadlock"),
    ("EFAULT", "bad address"),
    ("ENOTBLK", "not a block device"),
    ("EBUSY", "device busy"),
    ("EXDEV", "cross-device link"),
    ("ENODEV", "device does not support operation"),
    ("ENOTDIR", "not a directory"),
    ("EISDIR", "is a directory"),
    ("EINVAL", "invalid argument"),
    ("ENFILE", "system cannot open more files"),
    ("EMFILE", "process cannot open more files"),
    ("ENOTTY", "not a tty"),
    ("EFBIG", "file too big"),
    ("ENOSPC", "out of disk space"),
    ("ESPIPE", "unseekable descriptor"),
    ("EROFS", "read-only file system"),
    ("EMLINK", "too many links"),
    ("EDOM", "input out of range"),
    ("ERANGE", "output out of range"),
    ("EALREADY", "operation already in progress"),
    ("ENOTSOCK", "not a socket"),
    ("EDESTADDRREQ", "destination address required"),
    ("EMSGSIZE", "message too long"),
    ("EPROTOTYPE", "incorrect protocol type"),
    ("ENOPROTOOPT", "protocol not available"),
    ("EPROTONOSUPPORT", "protocol not supported"),
    ("ESOCKTNOSUPPORT", "socket type not supported"),
    ("EOPNOTSUPP", "operation not supported"),
    ("EPFNOSUPPORT", "protocol family not supported"),
    ("EAFNOSUPPORT", "address family not supported"),
    ("EADDRINUSE", "address already used"),
    ("EADDRNOTAVAIL", "address not available"),
    ("ENETDOWN", "network down"),
    ("ENETUNREACH", "network unreachable"),
    ("ENETRESET", "network reset"),
    ("ECONNABORTED", "connection aborted"),
    ("ECONNRESET", "connection reset"),
    ("ENOBUFS", "out of buffer space"),
    ("EISCONN", "already connected"),
    ("ENOTCONN", "not connected"),
    ("ESHUTDOWN", "socket shut down"),
    ("ETOOMANYREFS", "too many references"),
    ("ECONNREFUSED", "connection refused"),
    ("ELOOP", "symbolic link loop"),
    ("ENAMETOOLONG", "file name too long"),
    ("EHOSTDOWN", "host down"),
    ("EHOSTUNREACH", "host unreachable"),
    ("ENOTEMPTY", "directory not empty"),
    ("EUSERS", "too many users"),
    ("EDQUOT", "disk quota exceeded"),
    ("ESTALE", "stale NFS file handle"),
    ("EREMOTE", "too many levels of remote in path"),
    ("ENOLCK", "no locks available"),
    ("ENOSYS", "system call not available"),
    ("ENOSTR", "not a stream device"),
    ("ETIME", "timer expired"),
    ("ENOSR", "out of stream resources"),
    ("ENOMSG", "no message of desired type"),
    ("EBADMSG", "bad message type"),
    ("EIDRM", "identifier removed"),
    ("ENONET", "machine not on network"),
    ("ENOLINK", "link severed"),
    ("EADV", "advertise error"),
    ("ESRMNT", "srmount error"),
    ("ECOMM", "communication error"),
    ("EPROTO", "protocol error"),
    ("EMULTIHOP", "multihop attempted"),
    ("EREMCHG", "remote address changed"),
)


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {0: "no error"}
    for name, text in _ERROR_TEXTS:
        number = getattr(errno, name, None)
        if number is not None and number not in table:
            table[number] = text
    return table


ERROR_STR: dict[int, str] = _build_table()


def error_str(number: int | None) -> str:
    """qmail's error_str(): lower-case texts of its own, not strerror's."""
    if number is None:
        return "unknown error"
    return ERROR_STR.get(number, "unknown error")


def make_maildir(path: str, cwd: str | None = None) -> str | None:
    """Make the Maildir; None on success, else qmail's one-line fatal message.

    A relative ``path`` is taken from ``cwd`` (an in-process program's current
    directory, :attr:`ProgramContext.cwd`) when given; messages show ``path``
    as the user wrote it, as qmail's do.
    """
    base = os.path.join(cwd, path) if cwd is not None else path
    steps = [(base, path)]
    steps += [(os.path.join(base, sub), f"{path}/{sub}") for sub in ("tmp", "new", "cur")]
    for target, shown in steps:
        try:
            os.mkdir(target, MODE)
            os.chmod(target, MODE)
        except OSError as exc:
            return f"{FATAL}unable to mkdir {shown}: {error_str(exc.errno)}"
    return None


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if len(argv) < 2:
        ctx.stderr.write(f"{USAGE}\n".encode())
        ctx.stderr.flush()
        return EXIT_PERM
    failure = make_maildir(argv[1], None if ctx.cwd is None else str(ctx.cwd))
    if failure is None:
        return EXIT_OK
    ctx.stderr.write(os.fsencode(failure) + b"\n")
    ctx.stderr.flush()
    return EXIT_TEMP
