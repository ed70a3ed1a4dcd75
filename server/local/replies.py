"""Every text qmail-local, qmail-lspawn, qmail-getpw and qmail-newu show.

Checked against netqmail-1.06: qmail-local.c (its ``strerr_die`` texts; each
is followed by a newline when printed), qmail-lspawn.c ``report()``,
qmail-newu.c (spawn.c's ``err()`` texts are in server/spawnpipe.py).
:func:`error_str` and :func:`error_temp` are qmail's error_str.c and
error_temp.c: qmail prints its own wording of errno, not the C library's
``strerror``.
"""

from __future__ import annotations

import errno

from server import strerr

# qmail-local.c
USAGE = (
    "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty"
)
NOMEM = "Out of memory. (#4.3.0)"
REWIND = "Unable to rewind message. (#4.3.0)"
CHILD_CRASHED = "Aack, child crashed. (#4.3.0)"
SLOWLOCK = "File has been locked for 30 seconds straight. (#4.3.0)"
MAILDIR_CHDIR = "Unable to chdir to maildir. (#4.2.1)"
MAILDIR_TIMEOUT = "Timeout on maildir delivery. (#4.3.0)"
MAILDIR_READ = "Unable to read message. (#4.3.0)"
MAILDIR_TEMP = "Temporary error on maildir delivery. (#4.3.0)"
LOOPING = "This message is looping: it already has my Delivered-To line. (#5.4.6)"
HOME_WRITABLE = "Uh-oh: home directory is writable. (#4.7.0)"
HOME_STICKY = "Home directory is sticky: user is editing his .qmail file. (#4.2.1)"
HOME_STICKY_WARNING = "Warning: home directory is sticky."
QMAIL_WRITABLE = "Uh-oh: .qmail file is writable. (#4.7.0)"
NO_MAILBOX = "Sorry, no mailbox here by that name. (#5.1.1)"
FIRST_LINE_BLANK = "Uh-oh: first line of .qmail file is blank. (#4.2.1)"
FILE_WITH_X = "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)"
PROG_WITH_X = "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)"


def fork_failed(err: int) -> str:
    return f"Unable to fork: {error_str(err)}. (#4.3.0)"


def read_failed(err: int) -> str:
    return f"Unable to read message: {error_str(err)}. (#4.3.0)"


def switch_home_failed(home: str, err: int) -> str:
    return f"Unable to switch to {home}: {error_str(err)}. (#4.3.0)"


def stat_home_failed(err: int) -> str:
    return f"Unable to stat home directory: {error_str(err)}. (#4.3.0)"


def open_qmail_failed(fn: str, err: int) -> str:
    return f"Unable to open {fn}: {error_str(err)}. (#4.3.0)"


def open_mbox_failed(fn: str, err: int) -> str:
    # mailfile(): the open failure is #4.2.1, the write failure #4.3.0.
    return f"Unable to open {fn}: {error_str(err)}. (#4.2.1)"


def write_mbox_failed(fn: str, err: int) -> str:
    return f"Unable to write {fn}: {error_str(err)}. (#4.3.0)"


def run_sh_failed(err: int) -> str:
    return f"Unable to run /bin/sh: {error_str(err)}. (#4.3.0)"


def forward_failed(qqx: str) -> str:
    """qmail_close()'s text without its Z/D letter, as mailforward() prints it."""
    return f"Unable to forward message: {qqx[1:]}."


# qmail-lspawn.c report(): exit codes of the spawned child (qlx.h) and texts.
QLX_USAGE = 112
QLX_BUG = 101
QLX_ROOT = 113
QLX_NFS = 115
QLX_NOALIAS = 116
QLX_CDB = 117
QLX_SYS = 118
QLX_NOMEM = 119
QLX_EXECSOFT = 120
QLX_EXECPW = 121
QLX_EXECHARD = 126

REPORT_FIXED: dict[int, str] = {
    QLX_CDB: "ZTrouble reading users/cdb in qmail-lspawn.\n",
    QLX_NOMEM: "ZOut of memory in qmail-lspawn.\n",
    QLX_SYS: "ZTemporary failure in qmail-lspawn.\n",
    QLX_NOALIAS: "ZUnable to find alias user!\n",
    QLX_ROOT: "ZNot allowed to perform deliveries as root.\n",
    QLX_USAGE: "ZInternal qmail-lspawn bug.\n",
    QLX_NFS: "ZNFS failure in qmail-local.\n",
    QLX_EXECHARD: "DUnable to run qmail-local.\n",
    QLX_EXECSOFT: "ZUnable to run qmail-local.\n",
    QLX_EXECPW: "ZUnable to run qmail-getpw.\n",
}
REPORT_CRASHED = "Zqmail-local crashed.\n"
#: Exit codes report() turns into "Z"; 0 is "K"; everything else "D".
REPORT_SOFT_CODES = frozenset({111, 71, 74, 75})
#: spawn.c: the child's output is cut to this many bytes.
TRUNCREPORT = 3000
TRUNCMESS = "\nError report too long, sorry.\n"

# qmail-newu.c
NEWU_CHDIR = "qmail-newu: fatal: unable to chdir\n"
NEWU_NOMEM = "qmail-newu: fatal: out of memory\n"
NEWU_OPENA = "qmail-newu: fatal: unable to open users/assign\n"
NEWU_READA = "qmail-newu: fatal: unable to read users/assign\n"
NEWU_FORMAT = "qmail-newu: fatal: bad format in users/assign\n"
NEWU_OPENT = "qmail-newu: fatal: unable to open users/cdb.tmp\n"
NEWU_WRITET = "qmail-newu: fatal: unable to write users/cdb.tmp\n"
NEWU_RENAME = "qmail-newu: fatal: unable to move users/cdb.tmp to users/cdb\n"

#: error_temp.c's list (the networking entries cannot arise here).
_TEMP_ERRNOS = frozenset(
    {
        errno.EINTR,
        errno.ENOMEM,
        errno.ETXTBSY,
        errno.EIO,
        errno.ETIMEDOUT,
        errno.EAGAIN,
        errno.EDEADLK,
        errno.EBUSY,
        errno.ENFILE,
        errno.EMFILE,
        errno.EFBIG,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ESTALE,
        errno.ENOLCK,
    }
)


def error_str(err: int) -> str:
    """error_str.c's wording (server.strerr); 0 stands for an OSError without errno."""
    return strerr.error_str(err or None)


def error_temp(err: int) -> bool:
    return err in _TEMP_ERRNOS
