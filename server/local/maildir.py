"""Maildir delivery as qmail-local's ``maildir_child()`` does it (maildir(5)).

Steps, each a durable file step through ``runtime.fileops``:

1. the Maildir must be a directory we may enter (qmail's ``chdir``; failing
   that is "Unable to chdir to maildir. (#4.2.1)" unless the error is
   temporary);
2. the name ``tmp/<time>.<pid>.<host>``: ``time`` is now in whole seconds,
   ``pid`` the delivering child's pid (a fresh one per delivery, as qmail
   forks a child for each), ``host`` the host name cut to 64 bytes. qmail
   1.06 writes the host name as it is: a ``/`` or ``:`` in it is *not*
   escaped (the ``\\057``/``\\072`` rule came later, with maildir++), so a
   ``/`` makes the name unusable and the delivery defers. If the tmp name
   exists, qmail tries again (after sleep(2)) and gives up after three tries;
   we cannot sleep in virtual time, so the three tries read the clock again;
3. create it exclusively (mode 0600: open_excl's 0644 under qmail-local's
   umask 077), write ``Return-Path:``, ``Delivered-To:`` and the message,
   fsync, close;
4. link it to ``new/<same name>``, then unlink the ``tmp/`` name (also
   after any failure).

Any failure in 2–4 is "Temporary error on maildir delivery. (#4.3.0)".
"""

from __future__ import annotations

import contextlib
import os
import stat

from server.errors import TempFail
from server.local import replies
from server.runtime import Runtime

#: maildir_child's ``char host[64]``.
HOST_MAX = 64
#: maildir_child's loop: three names tried before giving up.
NAME_TRIES = 3


def unique_name(runtime: Runtime, pid: int) -> str:
    """``time.pid.host`` for one delivery."""
    host = runtime.hostname.encode("latin-1", "replace")[:HOST_MAX].decode("latin-1")
    return f"{runtime.now()}.{pid}.{host}"


def _enter(maildir: str) -> None:
    """Stand-in for chdir(maildir): the same errors, no change of cwd."""
    try:
        st = os.stat(maildir)
    except OSError as exc:
        raise _chdir_failure(exc.errno or 0) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise _chdir_failure(20)  # ENOTDIR
    if not os.access(maildir, os.X_OK):
        raise _chdir_failure(13)  # EACCES


def _chdir_failure(err: int) -> TempFail:
    if replies.error_temp(err):
        return TempFail(replies.MAILDIR_TEMP)
    return TempFail(replies.MAILDIR_CHDIR)


def deliver(maildir: str, header: bytes, message: bytes, runtime: Runtime) -> str:
    """Deliver ``header`` + ``message`` into ``maildir``; return the file's name.

    Names are strings, joined as qmail-local's relative names are (``tmp/``,
    ``new/``): pathlib would cost a delivery more than its system calls.

    Raises :class:`TempFail` with qmail-local's text on any failure.
    """
    _enter(maildir)
    pid = runtime.next_pid()
    for _ in range(NAME_TRIES):
        name = unique_name(runtime, pid)
        tmp = os.path.join(maildir, "tmp", name)
        try:
            os.stat(tmp)
        except FileNotFoundError:
            break
        except OSError:
            pass
    else:
        raise TempFail(replies.MAILDIR_TEMP)
    new = os.path.join(maildir, "new", name)
    ops = runtime.fileops
    try:
        ops.write_new(tmp, header + message, 0o600)
    except OSError as exc:
        _try_unlink(runtime, tmp)
        raise TempFail(replies.MAILDIR_TEMP) from exc
    try:
        ops.link(tmp, new)
    except OSError as exc:
        _try_unlink(runtime, tmp)
        raise TempFail(replies.MAILDIR_TEMP) from exc
    _try_unlink(runtime, tmp)
    return name


def _try_unlink(runtime: Runtime, path: str) -> None:
    with contextlib.suppress(OSError):
        runtime.fileops.unlink(path)
