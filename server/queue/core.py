"""qmail-queue's ordered durable steps, and small readers of what they leave.

:func:`write_queue` puts one message into ``HOME/queue`` in qmail-queue.c's
order (INTERNALS section 3); each numbered step is one call of
``FileOps`` so a test can crash between any two of them (the states that a
crash leaves behind are tabled in :mod:`server.queue.states`):

1. create ``pid/<pid>.<starttime>.<seq>`` exclusively (seq 1..9; exit 63 if
   all nine exist); its inode becomes the message number N;
2. link it to ``mess/<N % 23>/N`` (64);
3. unlink the pid file (63);
4. write the Received line and the message into ``mess/`` (53);
5. create ``intd/N`` exclusively (65);
6. read the envelope; write ``u<uid>\\0p<pid>\\0`` and the envelope into
   ``intd/N`` (53; 91 or 11 for a bad envelope, 54 if it ends early);
7. fsync ``mess/N``, then ``intd/N`` (53);
8. link ``intd/N`` to ``todo/N`` (66) -- from here on the message is queued;
9. pull ``lock/trigger`` (failure ignored).

qmail-queue.c fsyncs ``mess/N`` before it creates ``intd/N``, and so pays
for two journal commits a message. Here both files are written first and
then fsync'd in the same order (:meth:`FileOps.fsync_open_in_order`), which a
journaling file system commits as one: ``intd/N`` is never durable before
``mess/N``, ``todo/N`` is linked only after both fsyncs, and the files a
crash can leave are the ones qmail-queue's can (a message without
``todo/N`` is qmail-send's to clean up after 36 hours). A bad envelope
still finds ``mess/N`` fsync'd first, and a failed fsync is 53, as in
qmail-queue.

Like qmail-queue.c, a write or read failure (53, 54) removes ``intd/N`` and
``mess/N`` before exiting, while the other failures leave their files for
qmail-send's 36-hour cleanup. A bad envelope (91, 11) leaves ``intd/N``
holding what qmail-queue's 256-byte output buffer had flushed.

qmail-queue writes the message to ``mess/N`` as it reads it from its pipe,
so a big message is never held whole. :func:`open_message` does the same
in three parts: steps 1-3 when it is called, step 4 as the pieces come
(:meth:`MessageWriter.write`: one ``write`` each), steps 5-9 in
:meth:`MessageWriter.finish`. :func:`write_queue` is that with the whole
message as the last piece, one ``write`` as in the table. As in
qmail-queue.c, ``mess/N`` is written through the descriptor that created
the pid file, and ``intd/N`` through the one that created it. A message whose
writer ends in :meth:`MessageWriter.abandon` (the caller gave up: qmail-queue
reads the end of its envelope pipe first, exit 54) leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from server.qdir import SPLIT, qfn
from server.queue import codes
from server.queue.envelope import Envelope, EnvelopeError, TodoFile, intd_header, parse_todo
from server.queue.states import CleanupAction, QueueListing, RemovePid
from server.runtime import FileOps

#: qmail-queue.c ``#define DEATH 86400``: it gives up (exit 52) after a day.
DEATH: Final = 86400
#: qmail-queue.c tries pid/<pid>.<time>.<seq> for seq 1..9.
PID_TRIES: Final = 9
#: substdio buffer qmail-queue.c writes intd/ through (``outbuf[256]``).
OUTBUF: Final = 256


class QueueFailure(Exception):
    """qmail-queue gives up with exit ``code`` (qmail-queue(8))."""

    def __init__(self, code: int) -> None:
        super().__init__(f"qmail-queue exit {code}")
        self.code = code


def received_line(pid: int, invoked: str, date: str) -> bytes:
    """``Received: (qmail <pid> invoked <how>); <date822fmt>\\n`` (qmail-queue.c)."""
    return f"Received: (qmail {pid} invoked {invoked}); {date}\n".encode()


@dataclass(frozen=True, kw_only=True)
class QueueJob:
    """One run of qmail-queue: who it is and what it writes first."""

    queue: Path
    pid: int
    uid: int
    starttime: int
    received: bytes


def _flushed(data: bytes) -> bytes:
    # substdio flushes a full buffer only when one more byte arrives, so of
    # k bytes put, ((k-1)//256)*256 reached the file when qmail-queue died.
    return data[: max(0, (len(data) - 1) // OUTBUF * OUTBUF)]


def _make_pid(job: QueueJob, fileops: FileOps) -> tuple[Path, int, int]:
    """pidopen() and the fstat: the pid file, its descriptor and its inode."""
    for seq in range(1, PID_TRIES + 1):
        path = job.queue / "pid" / f"{job.pid}.{job.starttime}.{seq}"
        try:
            fd = fileops.open_new(path)
        except OSError:
            continue
        try:
            return path, fd, fileops.inode(fd, path)
        except OSError as exc:
            fileops.close(fd)
            raise QueueFailure(codes.PID_TROUBLE) from exc
    raise QueueFailure(codes.PID_TROUBLE)


def _cleanup(fileops: FileOps, *paths: Path) -> None:
    # qmail-queue.c cleanup(): intd first, then mess; stop at the first failure.
    _unlink_all(fileops, *paths)


def _step(code: int, action: Callable[[], object]) -> None:
    try:
        action()
    except OSError as exc:
        raise QueueFailure(code) from exc


def write_queue(
    job: QueueJob,
    message: bytes,
    envelope: Callable[[], Envelope],
    fileops: FileOps,
    *,
    fsync: bool = True,
) -> int:
    """Queue ``message``; return its number. Raises :class:`QueueFailure`.

    ``envelope`` is called after ``intd/N`` exists, as qmail-queue reads fd 1
    only then; it may raise :class:`EnvelopeError`.
    """
    return open_message(job, fileops, fsync=fsync).finish(message, envelope)


def open_message(job: QueueJob, fileops: FileOps, *, fsync: bool = True) -> MessageWriter:
    """Steps 1-3 (pid file, link to mess, unlink pid): a writer for the message.

    Raises :class:`QueueFailure` (63, 64) as :func:`write_queue` does.
    """
    pidfn, fd, msgid = _make_pid(job, fileops)
    messfn = qfn(job.queue, "mess", msgid)
    try:
        _step(codes.MESS_TROUBLE, lambda: fileops.link(pidfn, messfn))
        _step(codes.PID_TROUBLE, lambda: fileops.unlink(pidfn))
    except QueueFailure:
        fileops.close(fd)
        raise
    return MessageWriter(job=job, fileops=fileops, fsync=fsync, msgid=msgid, messfd=fd)


@dataclass
class MessageWriter:
    """One message being written into ``mess/N`` (steps 4-9), piece by piece.

    A write that fails removes ``mess/N`` at once, as qmail-queue dies on it
    (53); the writer then ignores further pieces and :meth:`finish` raises
    53, as the caller learns qmail-queue's exit code only at qmail_close().

    As qmail-queue, it writes ``mess/N`` through the descriptor it created
    the pid file with, and ``intd/N`` through the one it created it with,
    both kept until the message is queued or given up.
    """

    job: QueueJob
    fileops: FileOps
    fsync: bool
    msgid: int
    #: the pid file's descriptor, which is ``mess/N``'s after step 2 (-1 once closed)
    messfd: int
    #: ``intd/N``'s descriptor from step 5 (-1 before it and once closed)
    intdfd: int = dataclasses.field(default=-1, init=False)
    #: Whether anything is in mess/N yet (qmail-queue's Received line goes first).
    _started: bool = dataclasses.field(default=False, init=False)
    _done: bool = dataclasses.field(default=False, init=False)
    #: Whether the kernel was asked to start writing both files (:meth:`hint`).
    _hinted: bool = dataclasses.field(default=False, init=False)
    #: ``mess/N``, named once.
    messfn: Path = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.messfn = qfn(self.job.queue, "mess", self.msgid)

    def _close(self) -> None:
        """qmail-queue's exit: both descriptors closed (once)."""
        for fd in (self.messfd, self.intdfd):
            if fd >= 0:
                with suppress(OSError):
                    self.fileops.close(fd)
        self.messfd = self.intdfd = -1

    def _append(self, data: bytes) -> None:
        if not self._started:
            data, self._started = self.job.received + data, True
        self.fileops.write(self.messfd, data)

    def write(self, data: bytes) -> None:
        """Step 4 for one piece: append it, without fsync."""
        if self._done or not data:
            return
        try:
            self._append(data)
        except OSError:
            self.abandon()

    def abandon(self) -> None:
        """Nothing will be queued: remove ``mess/N``, as qmail-queue's cleanup()."""
        if not self._done:
            self._done = True
            self._close()
            _cleanup(self.fileops, self.messfn)

    def _sync(self, *files: tuple[int, Path]) -> None:
        if self.fsync:
            self.fileops.fsync_open_in_order(*files, hinted=self._hinted)

    def _fail(self, code: int, intdfn: Path, cause: BaseException) -> NoReturn:
        """qmail-queue's die_write() or die_read(): both files removed, exit ``code``."""
        self._close()
        _cleanup(self.fileops, intdfn, self.messfn)
        raise QueueFailure(code) from cause

    def finish(self, last: bytes, envelope: Callable[[], Envelope]) -> int:
        """Append ``last``, then steps 5-9; the message's number.

        ``envelope`` is called after ``intd/N`` exists, as qmail-queue reads
        fd 1 only then; it may raise :class:`EnvelopeError`.
        """
        intdfn = self.end(last)
        try:
            try:
                env = envelope()
            except EnvelopeError as exc:
                self.reject(intdfn, exc)
            self.write_envelope(intdfn, env)
            return self.commit(intdfn)
        finally:
            self._close()  # whatever ended it (each step closes them on its way out)

    # finish() in its parts, for a caller that ends several messages together
    # (server.queue.service's loop): end(), then write_envelope() or reject()
    # once the envelope is read, then commit(), each message's in this order;
    # hint() between write_envelope() and commit() starts the kernel writing.

    def end(self, last: bytes = b"") -> Path:
        """Append ``last`` (the Received line at least), then step 5: ``intd/N``."""
        if self._done:
            raise QueueFailure(codes.WRITE_ERROR)
        try:
            if last or not self._started:
                self._append(last)
        except OSError as exc:
            self.abandon()
            raise QueueFailure(codes.WRITE_ERROR) from exc
        self._done = True  # from here on a failure cleans up as qmail-queue's exit does
        intdfn = qfn(self.job.queue, "intd", self.msgid)
        try:
            self.intdfd = self.fileops.open_new(intdfn)
        except OSError as exc:
            self._close()
            raise QueueFailure(codes.INTD_TROUBLE) from exc
        return intdfn

    def reject(self, intdfn: Path, exc: EnvelopeError) -> NoReturn:
        """A bad or cut-off envelope: qmail-queue had fsync'd ``mess/N`` before
        it read a byte of the envelope, so a failure there is what it reports
        (53); else its exit code, what it leaves in ``intd/N`` depending on it."""
        try:
            self._sync((self.messfd, self.messfn))
        except OSError as sync_exc:
            self._fail(codes.WRITE_ERROR, intdfn, sync_exc)
        if exc.code == codes.READ_ERROR:
            self._fail(codes.READ_ERROR, intdfn, exc)
        partial = _flushed(intd_header(self.job.uid, self.job.pid) + exc.echo)
        if partial:  # what qmail-queue's buffer had flushed into intd/N when it died
            with suppress(OSError):
                self.fileops.write(self.intdfd, partial)
        self._close()
        raise QueueFailure(exc.code) from exc

    def write_envelope(self, intdfn: Path, env: Envelope) -> None:
        """Step 6: the ``u`` and ``p`` records and the envelope into ``intd/N``."""
        try:
            self.fileops.write(self.intdfd, intd_header(self.job.uid, self.job.pid) + env.echo)
        except OSError as exc:
            self._fail(codes.WRITE_ERROR, intdfn, exc)

    def hint(self) -> None:
        """Ask the kernel to start writing both files (FileOps.start_writeback_open):
        nothing is durable before :meth:`commit`, whose fsyncs then need not ask."""
        if self.fsync and not self._hinted:
            self.fileops.start_writeback_open(self.messfd, self.intdfd)
            self._hinted = True

    def commit(self, intdfn: Path) -> int:
        """Steps 7-9: fsync ``mess/N`` then ``intd/N``, link ``todo/N``, pull the trigger."""
        try:
            self._sync((self.messfd, self.messfn), (self.intdfd, intdfn))
        except OSError as exc:
            self._fail(codes.WRITE_ERROR, intdfn, exc)
        self._close()
        todofn = qfn(self.job.queue, "todo", self.msgid)
        _step(codes.TODO_TROUBLE, lambda: self.fileops.link(intdfn, todofn))
        with suppress(OSError):  # triggerpull.c: "if it fails, bummer"
            self.fileops.pull_trigger(self.job.queue / "lock" / "trigger")
        return self.msgid


def check_home(home: Path) -> Path:
    """qmail-queue's chdir(auto_qmail) (61) and chdir("queue") (62)."""
    if not home.is_dir():
        raise QueueFailure(codes.HOME_TROUBLE)
    queue = home / "queue"
    if not queue.is_dir():
        raise QueueFailure(codes.QUEUE_DIR_TROUBLE)
    return queue


# --- readers for qmail-send and friends -----------------------------------


def read_todo(path: Path) -> TodoFile:
    """An ``intd/`` or ``todo/`` file, parsed as qmail-send's todo_do() does."""
    return parse_todo(path.read_bytes())


def read_envelope(path: Path) -> tuple[str, list[str]]:
    """``(sender, recipients)`` of an ``intd/`` or ``todo/`` file."""
    todo = read_todo(path)
    return todo.sender, list(todo.recipients)


def message_ids(queue: Path) -> list[int]:
    """The numbers of the messages in ``queue/mess/*/``, sorted.

    Names that are not all digits are skipped, as readsubdir.c does.
    """
    ids: list[int] = []
    for i in range(SPLIT):
        try:
            names = os.listdir(queue / "mess" / str(i))
        except FileNotFoundError:
            continue
        ids.extend(int(name) for name in names if name.isdigit() and name.isascii())
    return sorted(ids)


def _atime(path: Path) -> int | None:
    try:
        return int(path.stat().st_atime)
    except OSError:
        return None


def _numbers(directory: Path) -> frozenset[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return frozenset()
    return frozenset(int(n) for n in names if n.isdigit() and n.isascii())


def scan_pids(queue: Path) -> dict[str, int]:
    """``pid/`` names and access times: all that qmail-clean's cleanuppid() reads
    (it runs as qmailq, which may not read qmails's info/)."""
    pids: dict[str, int] = {}
    with suppress(FileNotFoundError):
        for name in os.listdir(queue / "pid"):
            atime = _atime(queue / "pid" / name)
            if atime is not None:
                pids[name] = atime
    return pids


def scan_queue(queue: Path) -> QueueListing:
    """The :class:`~server.queue.states.QueueListing` of ``queue`` as it is on disk."""
    return dataclasses.replace(scan_messages(queue), pid=scan_pids(queue))


def scan_messages(queue: Path) -> QueueListing:
    """mess/, info/ and todo/ without pid/: what qmail-send's cleanup reads (it
    runs as qmails, which may not read qmailq's pid/)."""
    mess: dict[int, int] = {}
    for msgid in message_ids(queue):
        atime = _atime(qfn(queue, "mess", msgid))
        if atime is not None:
            mess[msgid] = atime
    info: set[int] = set()
    for i in range(SPLIT):
        info |= _numbers(queue / "info" / str(i))
    return QueueListing(mess=mess, info=frozenset(info), todo=_numbers(queue / "todo"))


def apply_cleanup(queue: Path, actions: list[CleanupAction], fileops: FileOps) -> list[bool]:
    """Do ``actions`` as qmail-clean would; per action, whether it succeeded.

    qmail-clean answers ``!`` when an unlink fails for a reason other than
    "no such file" (qmail-send then logs a warning); that is ``False`` here.
    """
    results: list[bool] = []
    for action in actions:
        if isinstance(action, RemovePid):
            # cleanuppid() ignores every failure.
            with suppress(OSError):
                fileops.unlink(queue / "pid" / action.name)
            results.append(True)
            continue
        results.append(
            _unlink_all(fileops, qfn(queue, "intd", action.msgid), qfn(queue, "mess", action.msgid))
        )
    return results


def _unlink_all(fileops: FileOps, *paths: Path) -> bool:
    """Unlink in order, a missing file counting as gone; False at the first failure."""
    for path in paths:
        try:
            fileops.unlink(path)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True
