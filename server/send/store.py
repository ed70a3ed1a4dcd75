"""Every file step qmail-send (and qmail-clean on its behalf) takes in ``queue/``.

Names are qmail's (fmtqfn.c), relative to the queue directory, because they
appear in log lines: ``info/5/1234``, ``todo/1234``, ``bounce/1234``.

Durable steps (create-and-fsync, unlink) go through the runtime's
:class:`~server.runtime.FileOps` so a test can crash qmail-send between any
two of them. Files qmail-send creates get their mtime set from the injected
clock: qmail reads a message's birth from ``info/``'s mtime and, after a
restart, each channel file's next retry from its mtime (pqadd, pqfinish).

The queue states qmail-send moves a message through (INTERNALS):

===========================  ==============================================
files present                what qmail-send does with it
===========================  ==============================================
mess + intd + todo           todo_do: write info (+local/remote), clean todo
mess + info + todo           crashed in todo_do: redo it (pqadd skips it)
mess + info + local/remote   deliveries; job_close unlinks each when done
mess + info (+ bounce)       messdone: inject bounce, unlink info, clean mess
mess only, 36 hours old      cleanup: qmail-clean removes it (foop/)
===========================  ==============================================
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from server.fdwrite import write_all
from server.qdir import SPLIT
from server.queue.states import QueueListing
from server.runtime import Runtime
from server.spawn import ChannelName


def rel(sub: str, msgid: int) -> str:
    """fmtqfn: ``sub/[split/]id`` relative to queue/, as logged."""
    if sub in ("mess", "info", "local", "remote"):
        return f"{sub}/{msgid % SPLIT}/{msgid}"
    return f"{sub}/{msgid}"


def _ids(names: list[str]) -> list[int]:
    # qmail-send.c todo_do and readsubdir skip names that are not all digits
    return [int(n) for n in names if n.isdigit() and n.isascii()]


def _read_all(fd: int) -> bytes:
    # os.read, not open(): a buffered file object cost a pass as much as the read
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_record(fd: int, size: int) -> bytes:
    """Up to the first NUL at least (getln): one read when the file is as fstat says."""
    data = os.read(fd, max(size, 1))
    while data and b"\0" not in data:
        more = os.read(fd, 65536)
        if not more:
            break
        data += more
    return data


@dataclass(frozen=True)
class Info:
    sender: str
    birth: int


class QueueStore:
    def __init__(
        self, queue: Path, runtime: Runtime, cleaner: Callable[[str, int], bool] | None = None
    ) -> None:
        self.queue = queue
        self._base = str(queue)
        self.runtime = runtime
        #: a qmail-clean process to ask (see server.send.pipes); None: do it here
        self.cleaner = cleaner

    def path(self, sub: str, msgid: int) -> Path:
        """fmtqfn's name under ``queue``, as :func:`server.qdir.qfn` makes it."""
        # one parse of a whole string: three joins cost a pass 5 µs a message
        return Path(self._p(sub, msgid))

    def path_str(self, sub: str, msgid: int) -> str:
        """:meth:`path` as a plain string."""
        return self._p(sub, msgid)

    def _p(self, sub: str, msgid: int) -> str:
        # a plain string: building Paths was most of a pass's time with 100k messages
        return f"{self._base}/{rel(sub, msgid)}"

    # -- listings ------------------------------------------------------------
    def todo_ids(self) -> list[int]:
        """todo/ in numeric order (readdir order is the file system's; ours is stable)."""
        return sorted(_ids(os.listdir(self.queue / "todo")))

    def subdir_ids(self, sub: str) -> list[int]:
        """readsubdir: every id in sub/0 .. sub/22."""
        return list(self.iter_subdir_ids(sub))

    def iter_subdir_ids(self, sub: str) -> Iterator[int]:
        """readsubdir, one directory listed at a time (a big queue is never all in memory)."""
        for i in range(SPLIT):
            yield from self._listed(f"{sub}/{i}")

    def cleanup_listings(self) -> Iterator[QueueListing]:
        """What cleanup_do looks at, one split directory at a time: each mess/
        file's atime, the info/ ids beside it, and todo/ (listed once).

        :func:`server.queue.core.scan_messages` reads the same for the whole
        queue at once; with 100,000 messages queued that was qmail-send's
        peak of memory.
        """
        todo = frozenset(self._listed("todo"))
        for i in range(SPLIT):
            mess: dict[int, int] = {}
            for msgid in self._listed(f"mess/{i}"):
                try:
                    mess[msgid] = int(os.stat(self._p("mess", msgid)).st_atime)
                except OSError:
                    continue  # probably qmail-queue deleted it
            info = frozenset(self._listed(f"info/{i}"))
            yield QueueListing(mess=mess, info=info, todo=todo)

    def _listed(self, directory: str) -> list[int]:
        """The ids in queue/``directory``, sorted; none if it is missing."""
        try:
            return sorted(_ids(os.listdir(f"{self._base}/{directory}")))
        except FileNotFoundError:
            return []

    # -- reading -------------------------------------------------------------
    def exists(self, sub: str, msgid: int) -> bool:
        """stat() == 0; ENOENT is False, any other error raises OSError."""
        try:
            os.stat(self._p(sub, msgid))
        except FileNotFoundError:
            return False
        return True

    def read(self, sub: str, msgid: int) -> bytes:
        fd = os.open(self._p(sub, msgid), os.O_RDONLY)
        try:
            return _read_all(fd)
        finally:
            os.close(fd)

    def size(self, sub: str, msgid: int) -> int:
        return os.stat(self._p(sub, msgid)).st_size

    def mtime(self, sub: str, msgid: int) -> int | None:
        """The file's mtime, or None if it does not exist (any other error raises)."""
        try:
            return int(os.stat(self._p(sub, msgid)).st_mtime)
        except FileNotFoundError:
            return None

    def getinfo(self, msgid: int) -> Info | None:
        """qmail-send.c getinfo(): the F record and the file's mtime, or None."""
        try:
            fd = os.open(self._p("info", msgid), os.O_RDONLY)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            data = _read_record(fd, st.st_size)
        except OSError:
            return None
        finally:
            os.close(fd)
        birth = int(st.st_mtime)
        record, nul, _ = data.partition(b"\0")
        if not nul or not record.startswith(b"F"):
            return None
        return Info(sender=record[1:].decode("latin-1"), birth=birth)

    # -- writing -------------------------------------------------------------
    def create(self, sub: str, msgid: int) -> int:
        """open_excl: the file exists, empty, before anything is written to
        it; its descriptor, which qmail-send.c keeps to the file's fsync
        (fdinfo, fdchan): :meth:`fill`, :meth:`sync`, then :meth:`close`."""
        return self.runtime.fileops.open_new(self._p(sub, msgid), 0o600)

    def fill(self, fd: int, data: bytes, mtime: int) -> None:
        """Write a file made by :meth:`create` (:meth:`sync` fsyncs it); stamp
        the clock's time."""
        self.runtime.fileops.write(fd, data)
        os.utime(fd, (mtime, mtime))

    def start_writeback(self, fds: list[int]) -> None:
        """Ask the kernel to start writing these files, none of them made
        durable (FileOps.start_writeback_open): the :meth:`sync` of the first
        then commits them all in one journal transaction."""
        if self.runtime.fsync and fds:
            self.runtime.fileops.start_writeback_open(*fds)

    def sync(self, msgid: int, files: list[tuple[int, str]], *, hinted: bool = False) -> None:
        """fsync the message's files, each (descriptor, sub), in that order
        (FileOps.fsync_open_in_order: one journal commit for them all;
        ``hinted`` after :meth:`start_writeback` for all of them). A failure
        names the file in the OSError's ``filename``."""
        if self.runtime.fsync:
            named = [(fd, self._p(sub, msgid)) for fd, sub in files]
            self.runtime.fileops.fsync_open_in_order(*named, hinted=hinted)

    def close(self, *fds: int) -> None:
        """Close descriptors from :meth:`create` (a failure to close changes nothing)."""
        for fd in fds:
            with contextlib.suppress(OSError):
                self.runtime.fileops.close(fd)

    def unlink(self, sub: str, msgid: int, missing_ok: bool = True) -> None:
        try:
            self.runtime.fileops.unlink(self.path(sub, msgid))
        except FileNotFoundError:
            if not missing_ok:
                raise

    def utime(self, sub: str, msgid: int, t: int) -> None:
        os.utime(self._p(sub, msgid), (t, t))

    def markdone(self, channel: ChannelName, msgid: int, pos: int) -> bool:
        """Overwrite the record's ``T`` at ``pos`` with ``D`` (not fsynced, as in qmail).

        The write moves the file's mtime to "now", which a restarted qmail-send
        reads as the file's due time; we stamp the injected clock's now.
        """
        try:
            fd = os.open(self._p(channel, msgid), os.O_WRONLY)
        except OSError:
            return False
        try:
            if os.pwrite(fd, b"D", pos) != 1:
                return False
            now = self.runtime.now()
            os.utime(fd, (now, now))
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def append_bounce(self, msgid: int, entry: bytes) -> None:
        fd = os.open(self.path("bounce", msgid), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            write_all(fd, entry)
        finally:
            os.close(fd)

    # -- qmail-clean ---------------------------------------------------------
    def clean(self, kind: str, msgid: int) -> bool:
        """qmail-clean's two commands: ``todo/`` (intd, todo) and ``foop/`` (intd, mess).

        False stands for its ``!`` answer (an unlink failed other than ENOENT).
        """
        if self.cleaner is not None:
            return self.cleaner(kind, msgid)
        subs = ("intd", "todo") if kind == "todo" else ("intd", "mess")
        for sub in subs:
            try:
                self.unlink(sub, msgid)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    return False
        return True

    def clean_all(self, kind: str, msgids: list[int]) -> list[bool]:
        """:meth:`clean` for several messages; to qmail-clean, in one round trip."""
        many = getattr(self.cleaner, "many", None)
        if many is not None:
            return list(many(kind, msgids))
        return [self.clean(kind, msgid) for msgid in msgids]

    def atime(self, path: Path) -> int | None:
        try:
            return int(os.stat(path).st_atime)
        except OSError:
            return None
