"""qmail-queue as a warm service: queue for local callers over a Unix socket.

In a split home qmail-queue is setuid qmailq (``bin/qmail-queue``, the
wrapper of :mod:`server.queue.wrapper`), and every caller pays for starting
an interpreter. ``qmail-sim serve`` queues many messages a second from its
qmail-smtpd, which runs as qmaild: it starts this service instead, a process
already running as qmailq, and qmail-smtpd hands each message to it.

The service learns who is calling the way qmail-queue does, from the kernel:
the peer's uid (SO_PEERCRED) plays qmail-queue.c's getuid(), for the
Received line's wording and the ``u`` record. Nothing else the caller sends
is more than the message and the envelope, so a caller gets exactly what
running qmail-queue would give it. One request is one qmail-queue run,
and the message streams through it as through qmail-queue's pipe:

    request: frames, each an 8-byte length and that many bytes (at most
             MAX_FRAME): the message's, an empty frame, the envelope's, an
             empty frame
    answer:  pack_fields([exit code, qp])

A connection may carry one request after another: after an answer of exit
0 the service waits for the next request on it (the caller's uid is the
same for all of them, the kernel's record of who connected), and after any
other answer it hangs up, as the request may not have been read to its
end. A caller that hangs up between requests ends nothing. Reusing a
connection spares a connect and an accept per message
(server.queue.service_async keeps such connections for qmail-smtpd).

One thread serves every caller (:class:`_Loop`): the requests read to
their end together are ended together, so that one journal commit makes
all of them durable, each message's files still in qmail-queue's order.

The service starts the run (pid file, link to mess/) when the request's
first length arrives and writes each frame of the message into ``mess/N``
as it comes, so neither side ever holds a whole message; the envelope is read once
``intd/N`` exists, as qmail-queue reads fd 1. A caller that goes away
before its request ends is qmail-queue reading end of file (54): what was
written is removed. qmail-queue's exit codes carry over unchanged; a
service that is not there (no socket, refused, cut off) is exit 111 for the
caller, as a missing qmail-queue would be, and the queue's ordered steps
mean that nothing is half queued.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import socket
import struct
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Final

from server import privsep
from server.atonce import THREADS, AtOnce
from server.errors import EXIT_TEMP
from server.privsep import QmailIds
from server.programs import ProgramContext
from server.queue import codes
from server.queue.core import MessageWriter, QueueFailure, open_message
from server.queue.envelope import Envelope, EnvelopeError, parse_envelope
from server.queue.invoker import invoker_from_uid, make_job

#: The largest frame: what the service holds of a message at a time.
MAX_FRAME: Final = 1 << 20
#: The largest envelope the service reads (it parses an envelope whole);
#: this only stops a runaway caller.
MAX_ENVELOPE: Final = 1 << 31
#: What the service's loop reads at a time: small enough to come from the
#: heap (a MAX_FRAME buffer is mapped and unmapped again for every read).
READ_SIZE: Final = 1 << 16
#: A frame's length, before its bytes.
FRAME_LENGTH = struct.Struct(">Q")
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


def peer_uid(conn: socket.socket) -> int:
    """The connecting process's uid, as the kernel recorded it at connect()."""
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(data)
    return int(uid)


class CutOff(Exception):
    """The request ended early: the caller went away, or sent a bad frame."""


def _read_exact(conn: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = conn.recv(min(n - len(chunks), MAX_FRAME))
        if not chunk:
            raise CutOff
        chunks += chunk
    return bytes(chunks)


def read_frames(conn: socket.socket) -> Iterator[bytes]:
    """One part of a request (message or envelope): its frames, up to the empty one."""
    while True:
        (length,) = FRAME_LENGTH.unpack(_read_exact(conn, FRAME_LENGTH.size))
        if length == 0:
            return
        if length > MAX_FRAME:
            raise CutOff
        yield _read_exact(conn, length)


def _read_envelope(conn: socket.socket) -> Envelope:
    """The envelope part, once intd/N exists; a request cut off here is 54."""
    data = bytearray()
    try:
        for frame in read_frames(conn):
            data += frame
            if len(data) > MAX_ENVELOPE:
                raise CutOff
    except (CutOff, OSError) as exc:
        raise EnvelopeError(codes.READ_ERROR, b"") from exc
    return parse_envelope(bytes(data))


@dataclasses.dataclass
class QueueService:
    """Serve qmail-queue runs for ``ctx.home`` (a split home) on ``sock``."""

    ctx: ProgramContext
    ids: QmailIds
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    def serve_forever(self, sock: socket.socket) -> None:
        """Every caller from one thread (:class:`_Loop`)."""
        _Loop(self, sock).run()

    def open(self, uid: int) -> tuple[int, MessageWriter | int]:
        """Start one qmail-queue run for a caller of ``uid``: (its pid, which is
        the qp, and the writer of its message, or the exit code that ended it)."""
        runtime = dataclasses.replace(self.ctx.runtime, uid=uid)
        pid = runtime.next_pid()
        ctx = dataclasses.replace(self.ctx, runtime=runtime)
        try:
            job = make_job(ctx, self.env, pid, invoker_from_uid(uid, self.ids))
            return pid, open_message(job, runtime.fileops, fsync=runtime.fsync)
        except QueueFailure as failure:
            return pid, failure.code

    def queue(self, uid: int, conn: socket.socket) -> tuple[int, int]:
        """One qmail-queue run for a caller of ``uid`` reading ``conn``: (exit
        code, qp). (The simulator's service, one caller at a time,
        server.simqueue.)"""
        pid, writer = self.open(uid)
        if isinstance(writer, int):
            _drain(conn)  # so that the caller, still sending, reads the answer
            return writer, pid
        try:
            for frame in read_frames(conn):
                writer.write(frame)
        except (CutOff, OSError):
            writer.abandon()
            return codes.READ_ERROR, pid
        try:
            writer.finish(b"", lambda: _read_envelope(conn))
        except QueueFailure as failure:
            return failure.code, pid
        return codes.OK, pid


class _Frames:
    """:func:`read_frames` without waiting: the bytes of a connection as they
    come, given back as ("length", n) for each frame's length, then that
    frame's bytes in pieces ("piece", bytes); None when more must come."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._left = 0  # bytes of the current frame still to come

    def add(self, data: bytes) -> None:
        self._buffer += data

    def waiting(self) -> bool:
        """Whether bytes have come that were not given back yet."""
        return bool(self._buffer)

    def next(self) -> tuple[str, int | bytes] | None:
        if self._left:
            if not self._buffer:
                return None
            piece = bytes(self._buffer[: self._left])
            del self._buffer[: len(piece)]
            self._left -= len(piece)
            return "piece", piece
        if len(self._buffer) < FRAME_LENGTH.size:
            return None
        (length,) = FRAME_LENGTH.unpack_from(self._buffer)
        del self._buffer[: FRAME_LENGTH.size]
        self._left = length if length <= MAX_FRAME else 0
        return "length", int(length)


@dataclasses.dataclass(eq=False)
class _Caller:
    """One connection, and the request on it being read."""

    conn: socket.socket
    uid: int
    frames: _Frames = dataclasses.field(default_factory=_Frames)
    #: 0 before the request's first length, 1 reading the message, 2 the envelope
    part: int = 0
    qp: int = 0
    writer: MessageWriter | None = None
    intdfn: Path | None = None
    envelope: bytearray = dataclasses.field(default_factory=bytearray)
    #: the envelope once read whole (or what was wrong with it)
    env: Envelope | EnvelopeError | None = None
    #: the request's exit code once known: a failure, or 0 once committed
    code: int | None = None
    #: read to its end: the request waits for its batch to be ended
    ready: bool = False


class _Loop:
    """The service's callers, from one thread.

    A selector reads each connection's bytes as they come, and each piece of
    a message goes into ``mess/N`` at once (a connection holds about one
    read). The requests read to their end in one pass of the loop are then
    ended together: each one's envelope written into ``intd/N`` and the
    kernel asked to start writing all their files. Then each message is
    fsync'd (``mess/N``, then ``intd/N``) and linked into ``todo/`` in a
    thread of its own (server.atonce), all at once, as qmail-queue
    processes of their own would: their first fsyncs wait for the same
    journal commit, and the cache flushes of their second fsyncs come
    together, where one message after the other each fsync of a file
    already committed took a flush of its own. Each message's steps keep
    qmail-queue's order (server.queue.core). Reading and writing take no
    thread: the interpreter is not handed between threads at each system
    call, as with one thread per caller.

    A caller that stops half-way holds up only its own request; one that
    sends a next request before its answer waits for the answer; one that
    does not read its answers is hung up on.
    """

    def __init__(self, service: QueueService, sock: socket.socket) -> None:
        self.service = service
        self.sock = sock
        self.selector = selectors.DefaultSelector()
        #: no new caller is accepted until a connection closes (out of descriptors)
        self.full = False
        self.commits = AtOnce(THREADS, "qmail-queue commit")

    def run(self) -> None:
        self.sock.setblocking(False)
        self.selector.register(self.sock, selectors.EVENT_READ)
        again: list[_Caller] = []  # answered, with bytes of their next request already read
        while True:
            ready: list[_Caller] = []
            for caller in again:
                self._advance(caller, ready)
            for key, _events in self.selector.select(0 if ready else None):
                if key.data is None:
                    self._accept()
                else:
                    self._read(key.data, ready)
            ended = self._end(ready)
            again = [nxt for caller in ended if (nxt := self._answer(caller)) is not None]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # none waiting
            except OSError:  # no descriptor left: accept again once a connection closes
                self.full = True
                self.selector.unregister(self.sock)
                return
            conn.setblocking(False)
            try:
                caller = _Caller(conn, peer_uid(conn))
            except OSError:
                conn.close()
                continue
            self.selector.register(conn, selectors.EVENT_READ, caller)

    def _read(self, caller: _Caller, ready: list[_Caller]) -> None:
        try:
            data = caller.conn.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._gone(caller, hung_up=True)
            return
        caller.frames.add(data)
        self._advance(caller, ready)

    def _advance(self, caller: _Caller, ready: list[_Caller]) -> None:
        """Take the caller's bytes as far as they go; a request read to its end
        joins ``ready``, and nothing more is read from its caller until it is answered."""
        try:
            while not caller.ready and (token := caller.frames.next()) is not None:
                value = token[1]
                if isinstance(value, bytes):
                    self._piece(caller, value)
                else:
                    self._length(caller, value)
        except Exception:  # a bug of ours costs this caller its request, not the service
            self._gone(caller)
            return
        if caller.ready:
            self.selector.unregister(caller.conn)
            ready.append(caller)

    def _length(self, caller: _Caller, length: int) -> None:
        if caller.part == 0:  # the request's first length: qmail-queue starts
            caller.qp, writer = self.service.open(caller.uid)
            if isinstance(writer, int):
                caller.code = writer  # the rest is read and dropped, then answered
            else:
                caller.writer = writer
            caller.part = 1
        if length > MAX_FRAME:
            self._cut_off(caller)
        elif length == 0:  # the end of the message, then of the envelope
            self._part_ends(caller)

    def _piece(self, caller: _Caller, piece: bytes) -> None:
        if caller.code is not None:
            return  # a request that has failed is read to its end and dropped
        if caller.part == 1 and caller.writer is not None:
            caller.writer.write(piece)
        elif caller.part == 2:
            caller.envelope += piece
            if len(caller.envelope) > MAX_ENVELOPE:
                self._cut_off(caller)

    def _part_ends(self, caller: _Caller) -> None:
        if caller.part == 1:
            caller.part = 2
            if caller.writer is not None and caller.code is None:
                try:
                    caller.intdfn = caller.writer.end()
                except QueueFailure as failure:
                    caller.code = failure.code
            return
        if caller.code is None:
            try:
                caller.env = parse_envelope(bytes(caller.envelope))
            except EnvelopeError as exc:
                caller.env = exc
        caller.ready = True

    def _cut_off(self, caller: _Caller) -> None:
        """A frame longer than any: as qmail-queue reading its pipe's end (54).
        The request ends here, and is answered; the connection ends after it."""
        if caller.code is None and caller.writer is not None:
            if caller.part == 1:
                caller.writer.abandon()
                caller.code = codes.READ_ERROR
            else:  # mess/N fsync'd, then both files removed, with the batch
                caller.env = EnvelopeError(codes.READ_ERROR, b"")
        caller.ready = True

    def _close(self, caller: _Caller) -> None:
        caller.conn.close()
        if self.full:  # a descriptor is free again: callers waiting are accepted
            self.full = False
            self.selector.register(self.sock, selectors.EVENT_READ)

    def _gone(self, caller: _Caller, *, hung_up: bool = False) -> None:
        """The caller's end of input (``hung_up``), or a bug of ours that failed
        its request: what the request wrote is removed, as on qmail-queue's
        read error (54), and the connection closed. A caller that hung up in
        the middle of a request is answered first, if it still reads."""
        with suppress(KeyError, ValueError):
            self.selector.unregister(caller.conn)
        writer, caller.writer = caller.writer, None
        if writer is not None and caller.code is None:
            caller.code = codes.READ_ERROR
            if caller.intdfn is None:
                writer.abandon()
            else:
                with suppress(QueueFailure):
                    writer.reject(caller.intdfn, EnvelopeError(codes.READ_ERROR, b""))
        if hung_up and caller.part and caller.code is not None:
            with suppress(OSError):
                caller.conn.send(answer(caller.code, caller.qp))
        self._close(caller)

    def _end(self, ready: list[_Caller]) -> list[_Caller]:
        """Steps 6-9 for the batch's requests, each message's in order; the
        callers to answer (one that a bug of ours failed is hung up on, as a
        crashed qmail-queue leaves its caller without an exit code of its own)."""
        writing: list[tuple[_Caller, MessageWriter, Path]] = []
        failed: list[_Caller] = []
        for caller in ready:
            writer, intdfn, env = caller.writer, caller.intdfn, caller.env
            if caller.code is not None or writer is None or intdfn is None or env is None:
                continue
            try:
                if isinstance(env, EnvelopeError):
                    writer.reject(intdfn, env)
                writer.write_envelope(intdfn, env)
                writing.append((caller, writer, intdfn))
            except QueueFailure as failure:
                caller.code = failure.code
            except Exception:
                failed.append(caller)
        if len(writing) > 1:  # the first fsync commits them all
            for _caller, writer, _intdfn in writing:
                writer.hint()
        outcomes = self.commits.map(_commit_one, writing)
        failed += [caller for caller in outcomes if caller is not None]
        for caller in failed:
            self._gone(caller)
        return [caller for caller in ready if caller not in failed]  # (by identity)

    def _answer(self, caller: _Caller) -> _Caller | None:
        """Send the request's answer. After exit 0 the connection goes on (a
        new request on it, returned if bytes of it have come already); after
        any other answer it is hung up on, as is a caller not reading answers."""
        code = codes.READ_ERROR if caller.code is None else caller.code
        data = answer(code, caller.qp)
        try:  # a few bytes: a socket whose buffer cannot take them has a caller not reading
            if caller.conn.send(data) != len(data):
                code = -1
        except OSError:
            code = -1
        if code != codes.OK:
            self._close(caller)
            return None
        nxt = _Caller(caller.conn, caller.uid, caller.frames)
        self.selector.register(nxt.conn, selectors.EVENT_READ, nxt)
        return nxt if nxt.frames.waiting() else None


def _commit_one(each: tuple[_Caller, MessageWriter, Path]) -> _Caller | None:
    """One message's steps 7-9; its caller when a bug of ours failed it."""
    caller, writer, intdfn = each
    try:
        writer.commit(intdfn)
        caller.code = codes.OK
    except QueueFailure as failure:
        caller.code = failure.code
    except Exception:
        return caller
    return None


def answer(code: int, qp: int) -> bytes:
    """The service's answer to one request."""
    return privsep.pack_fields([str(code).encode(), str(qp).encode()])


def _drain(conn: socket.socket) -> None:
    """Read the rest of a request (message and envelope) and drop it."""
    with suppress(CutOff, OSError):
        for _part in range(2):
            for _frame in read_frames(conn):
                pass


class ServiceStream:
    """The caller's side of one request: the message goes out as it is put.

    Any failure to reach the service, or the service going away, is exit
    111 at :meth:`close`, as a qmail-queue that cannot run.
    """

    def __init__(self, path: Path) -> None:
        self._conn: socket.socket | None = None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(os.fspath(path))
        except OSError:
            conn.close()
        else:
            self._conn = conn

    def put(self, data: bytes) -> None:
        """More of the message, in frames of at most MAX_FRAME."""
        if self._conn is None or not data:
            return
        try:
            _send_frames(self._conn, data)
        except OSError:
            self.abandon()

    def close(self, envelope: bytes) -> tuple[int, int]:
        """End the message, send the envelope: (qmail-queue's exit code, qp)."""
        conn = self._conn
        if conn is None:
            return EXIT_TEMP, 0
        try:
            conn.sendall(FRAME_LENGTH.pack(0))
            _send_frames(conn, envelope)
            conn.sendall(FRAME_LENGTH.pack(0))
            conn.shutdown(socket.SHUT_WR)
            answer = bytearray()
            while chunk := conn.recv(4096):
                answer += chunk
            code, qp = privsep.unpack_fields(bytes(answer))
            return int(code), int(qp)
        except (OSError, ValueError):
            return EXIT_TEMP, 0
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Hang up: the service removes what it wrote of the message."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def frames(data: bytes) -> list[bytes]:
    """``data`` as frames of at most MAX_FRAME bytes, each after its length."""
    if len(data) <= MAX_FRAME:  # the usual case: no copy
        return [FRAME_LENGTH.pack(len(data)), data] if data else []
    view = memoryview(data)
    out: list[bytes] = []
    for start in range(0, len(view), MAX_FRAME):
        frame = view[start : start + MAX_FRAME]
        out += (FRAME_LENGTH.pack(len(frame)), bytes(frame))
    return out


def _send_frames(conn: socket.socket, data: bytes) -> None:
    for part in frames(data):
        conn.sendall(part)


def queue_via(path: Path, message: bytes, envelope: bytes) -> tuple[int, int]:
    """The caller's side: (qmail-queue's exit code, qp); 111 when nobody answers."""
    stream = ServiceStream(path)
    stream.put(message)
    return stream.close(envelope)
