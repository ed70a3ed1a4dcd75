"""queue/lock/tcpto: qmail-remote's memory of hosts that timed out (tcpto.c), and qmail-tcpto.

The file holds 1024 bytes: 64 records of 16. A record is the IPv4 address
(bytes 0-3), a count of recent timeouts (byte 4, at most 10) and the time of
the last one, low byte first (bytes 8-11); the other bytes are kept as read.
Rules, from tcpto.c:

* before connecting, qmail-remote skips a host whose count is at least 2 and
  whose last timeout is less than ``(60 + (pid & 31)) << 6`` seconds old
  (about an hour, varied per process);
* a connection that timed out bumps the count, unless the last one was less
  than 120 s ago; a host not yet listed takes a free slot (count 0) or the
  slot whose ``when + (count << 10)`` is least, with count 1;
* a connection that succeeded, or failed any other way, sets the count of a
  host the check found listed back to 0.

Every step holds an exclusive lock (flock) on the file, as lock_ex does.
qmail-rspawn empties the file when it starts (tcpto_clean.c) and qmail-tcpok
does the same on demand.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from server.errors import EXIT_OK, EXIT_TEMP
from server.programs import ProgramContext
from server.strerr import error_str

SIZE = 1024  # tcpto.c, tcpto_clean.c, qmail-tcpok.c: char buf[1024]
RECORD = 16
_ULONG = 1 << 64


def _when(record: bytes | bytearray) -> int:
    return int.from_bytes(record[8:12], "little")


def _quad(ip: str) -> bytes:
    return bytes(int(part) for part in ip.split("."))


class Tcpto:
    """tcpto() and tcpto_err() on one home's file, for one qmail-remote run."""

    def __init__(self, path: Path, now: Callable[[], int], pid: int) -> None:
        self.path = path
        self.now = now
        self.pid = pid
        self._wasthere = False

    def _read_locked(self) -> tuple[int, bytearray] | None:
        """getbuf(): (fd holding the lock, contents); None when tcpto.c's getbuf gives 0."""
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(self.path, "rb") as f:
                data = bytearray(f.read(SIZE))
        except OSError:
            os.close(fd)
            return None
        if len(data) < RECORD:
            os.close(fd)
            return None
        return fd, data[: len(data) - len(data) % RECORD]

    def timed_out(self, ip: str) -> bool:
        """tcpto(): whether to skip ``ip`` for now."""
        self._wasthere = False
        got = self._read_locked()
        if got is None:
            return False
        fd, data = got
        os.close(fd)
        want = _quad(ip)
        for pos in range(0, len(data), RECORD):
            record = data[pos : pos + RECORD]
            if record[:4] == want:
                self._wasthere = True
                if record[4] >= 2:
                    age = (self.now() - _when(record)) % _ULONG
                    return age < ((60 + (self.pid & 31)) << 6)
                return False
        return False

    def error(self, ip: str, timed_out: bool) -> None:
        """tcpto_err(): record the outcome of a connection attempt to ``ip``."""
        if not timed_out and not self._wasthere:
            return  # "could have been added, but not worth the effort to check"
        got = self._read_locked()
        if got is None:
            return
        fd, data = got
        try:
            slot = self._update(data, _quad(ip), timed_out)
            if slot is not None:
                os.pwrite(fd, bytes(data[slot : slot + RECORD]), slot)
        finally:
            os.close(fd)

    def _update(self, data: bytearray, want: bytes, timed_out: bool) -> int | None:
        now = self.now()
        for pos in range(0, len(data), RECORD):
            if data[pos : pos + 4] != want:
                continue
            if not timed_out:
                data[pos + 4] = 0
            else:
                if data[pos + 4] and now < 120 + _when(data[pos : pos + RECORD]):
                    return None
                data[pos + 4] = min(data[pos + 4] + 1, 10)
                data[pos + 8 : pos + 12] = (now % (1 << 32)).to_bytes(4, "little")
            return pos
        if not timed_out:
            return None
        slot = self._free_slot(data)
        data[slot : slot + 4] = want
        data[slot + 8 : slot + 12] = (now % (1 << 32)).to_bytes(4, "little")
        data[slot + 4] = 1
        return slot

    @staticmethod
    def _free_slot(data: bytearray) -> int:
        slots = range(0, len(data), RECORD)
        for pos in slots:
            if not data[pos + 4]:
                return pos
        return min(slots, key=lambda pos: _when(data[pos : pos + RECORD]) + (data[pos + 4] << 10))


def clean(path: Path) -> None:
    """tcpto_clean(): 1024 zero bytes over the start of the file, if it can be opened."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return
    try:
        os.write(fd, b"\0" * SIZE)
    except OSError:
        pass  # "if it fails, bummer"
    finally:
        os.close(fd)


def listing(data: bytes, now: int) -> bytes:
    """qmail-tcpto's report of every record with a nonzero count."""
    lines = []
    for pos in range(0, len(data) - len(data) % RECORD, RECORD):
        record = data[pos : pos + RECORD]
        if record[4] >= 1:
            ip = ".".join(map(str, record[:4]))
            age = (now - _when(record)) % _ULONG
            lines.append(f"{ip} timed out {age} seconds ago; # recent timeouts: {record[4]}\n")
    return "".join(lines).encode()


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    """qmail-tcpto: print lock/tcpto. Its warnings go to stdout (qmail-tcpto.c)."""
    lockdir = ctx.home / "queue" / "lock"
    if not lockdir.is_dir():
        stdout.write(f"fatal: unable to chdir: {error_str(2)}\n".encode())
        return EXIT_TEMP
    try:
        fd = os.open(lockdir / "tcpto", os.O_WRONLY)
    except OSError as exc:
        stdout.write(f"fatal: unable to open tcpto: {error_str(exc.errno)}\n".encode())
        return EXIT_TEMP
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with open(lockdir / "tcpto", "rb") as f:
            data = f.read(SIZE)
    except OSError as exc:
        stdout.write(f"fatal: unable to read tcpto: {error_str(exc.errno)}\n".encode())
        return EXIT_TEMP
    finally:
        os.close(fd)
    stdout.write(listing(data, ctx.runtime.now()))
    stdout.flush()
    return EXIT_OK
