"""qmail's own wording of errno values, and its strerr-style diagnostics.

:func:`error_str` is error_str.c: qmail prints its own lower-case texts for
errno, not the C library's ``strerror`` (``file does not exist``, ``access
denied``), and ``unknown error`` for a number it does not know.
"""

from __future__ import annotations

import errno

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
