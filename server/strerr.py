"""qmail's own wording of errno values, and its strerr-style diagnostics.

:func:`error_str` is error_str.c: qmail prints its own lower-case texts for
errno, not the C library's ``strerror`` (``file does not exist``, ``access
denied``), and ``unknown error`` for a number it does not know.

:func:`warn`, :func:`die` and :func:`die_sys` are strerr_die.c's
strerr_warn/strerr_die*x/strerr_die*sys for a program's ``main()``: the parts
one after another, ``error_str(errno)`` after them for the ``sys`` forms, a
newline, a flush; ``die`` hands back the exit code for ``main`` to return
(our programs never exit the process). Text parts are written as the file
names in them came in (UTF-8, undecodable bytes kept).
"""

from __future__ import annotations

import errno
from typing import BinaryIO

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


def _bytes(part: str | bytes) -> bytes:
    return part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape")


def warn(stderr: BinaryIO, *parts: str | bytes) -> None:
    """strerr_warn: the parts and a newline, flushed."""
    stderr.write(b"".join(_bytes(part) for part in parts) + b"\n")
    stderr.flush()


def die(stderr: BinaryIO, code: int, *parts: str | bytes) -> int:
    """strerr_die*x: warn, and give back ``code`` for main() to return."""
    warn(stderr, *parts)
    return code


def die_sys(stderr: BinaryIO, code: int, *parts: str | bytes, err: int | None) -> int:
    """strerr_die*sys: the parts followed by error_str(errno); gives back ``code``."""
    return die(stderr, code, *parts, error_str(err))
