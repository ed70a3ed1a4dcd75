"""utmp records in glibc's layout (``<bits/utmp.h>`` on Linux), for qbiff.

A record is 384 bytes::

    short ut_type; (2 bytes padding) pid_t ut_pid; char ut_line[32];
    char ut_id[4]; char ut_user[32]; char ut_host[256];
    struct exit_status {short e_termination, e_exit;} ut_exit;
    int32 ut_session; struct {int32 tv_sec, tv_usec;} ut_tv;
    int32 ut_addr_v6[4]; char __glibc_reserved[20];

in the machine's byte order. :func:`format` writes one (tests and the harness
make utmp files with it); :func:`parse` reads a file's worth, as qbiff.c's
``substdio_get(&ssutmp,&ut,sizeof(ut))`` loop does: whole records only, a
short tail ignored. The character arrays are kept whole, NULs and all, since
qbiff compares them with ``str_diffn`` and copies ``ut_line`` with its own NUL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

LAYOUT: Final = struct.Struct("=h2xi32s4s32s256s2hi2i16s20x")
RECORD_SIZE: Final = LAYOUT.size  # 384
LINE_SIZE: Final = 32
USER_SIZE: Final = 32
#: ut_type of a login (USER_PROCESS in <bits/utmp.h>).
USER_PROCESS: Final = 7
#: glibc's _PATH_UTMP, which qbiff.c's UTMP_FILE becomes on Linux.
UTMP_FILE: Final = "/var/run/utmp"


@dataclass(frozen=True, kw_only=True)
class Utmp:
    user: bytes
    line: bytes
    type: int = USER_PROCESS
    pid: int = 0
    id: bytes = b""
    host: bytes = b""
    session: int = 0
    tv_sec: int = 0
    tv_usec: int = 0


def format(record: Utmp) -> bytes:
    """One record, its strings NUL-padded (and cut) to their arrays' sizes."""
    return LAYOUT.pack(
        record.type,
        record.pid,
        record.line,
        record.id,
        record.user,
        record.host,
        0,
        0,
        record.session,
        record.tv_sec,
        record.tv_usec,
        bytes(16),
    )


def parse(data: bytes) -> list[Utmp]:
    """The whole records in ``data``; the arrays as stored (with their NULs)."""
    records = []
    for start in range(0, len(data) - RECORD_SIZE + 1, RECORD_SIZE):
        fields = LAYOUT.unpack_from(data, start)
        kind, pid, line, ident, user, host, _term, _exit, session, sec, usec, _addr = fields
        records.append(
            Utmp(
                type=kind,
                pid=pid,
                line=line,
                id=ident,
                user=user,
                host=host,
                session=session,
                tv_sec=sec,
                tv_usec=usec,
            )
        )
    return records


def cstr(array: bytes) -> bytes:
    """The C string in a char array: up to its first NUL."""
    return array.split(b"\0", 1)[0]
