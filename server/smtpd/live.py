"""qmail-smtpd in an asyncio server: the same core, one coroutine per connection.

:func:`handle` is the in-process equivalent of tcpserver starting
``bin/qmail-smtpd``: it reads the controls afresh for each connection (as a
new qmail-smtpd process would), writes the core's replies before every read,
waits ``timeoutsmtpd`` seconds for each buffer, and runs qmail-queue in a
worker thread so that one connection's fsyncs do not stall the others (and
concurrent fsyncs share the file system's journal commits). On a split
home, where the queue service (running as qmailq) does the queue's file
steps for every connection from one loop of its own, the loop itself talks to the
service (server.queue.service_async): no worker thread, a connection kept
for the next message, and the run opened at DATA, before the 354, as
qmail-smtpd's qmail_open() starts qmail-queue there.

Memory is bounded by design, as qmail-smtpd's is by its pipe to
qmail-queue: the core gives a message out in pieces of :data:`PIECE` bytes
as it arrives, and each goes on to qmail-queue (our writer's ``mess/N``,
the queue service's socket, or a queue program's pipe) before the next
read. A connection holds about one piece and one read of its message,
whatever the message's size. A message smaller than a piece is queued in
one trip to the worker thread, as it comes whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, TypeVar

from server.errors import TempFail
from server.programs import ProgramContext
from server.queue import codes
from server.queue.envelope import encode_envelope
from server.smtpd import replies
from server.smtpd.core import (
    Closed,
    MessageAbandoned,
    MessageData,
    QueueMessage,
    SmtpCore,
)
from server.smtpd.ipme import for_runtime
from server.smtpd.policy import load_config
from server.smtpd.program import addresses, finish_stream, make_core, open_stream, queue

if TYPE_CHECKING:
    from server.queue.client import QueueStream
    from server.queue.service_async import ServicePool, ServiceRun

#: Bytes asked for per read. qmail reads 1024 at a time; the size of a read
#: changes nothing a client can see, and bigger reads cost less here.
READ_SIZE = 65536
#: Bytes of a message passed on to qmail-queue at a time: big enough that a
#: trip to the worker thread costs little per byte, small enough that 40
#: connections (tcpserver's default -c) hold a few MB in all.
PIECE = 256 * 1024

_T = TypeVar("_T")


class QueueRun:
    """qmail-queue for the message being read, each step in the worker thread:
    opened at the message's first piece, or queued in one step when it came
    whole. With ``pool`` (the queue service of a split serve, unless
    QMAILQUEUE names another program) the steps run in the loop instead."""

    def __init__(
        self,
        ctx: ProgramContext,
        env: Mapping[str, str],
        executor: Executor | None,
        pool: ServicePool | None = None,
    ) -> None:
        self.ctx = ctx
        self.env = env
        self.executor = executor
        self.stream: QueueStream | None = None
        self.pool = pool if "QMAILQUEUE" not in env else None
        self.service: ServiceRun | None = None

    async def _call(self, fn: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    async def put(self, data: bytes) -> None:
        """qmail_open at the first piece, then qmail_put."""
        if self.pool is not None:
            if self.service is None:
                self.service = await self.pool.open()
            await self.service.put(data)
        elif self.stream is None:
            self.stream = await self._call(open_stream, self.ctx, self.env, data)
        else:
            await self._call(self.stream.put, data)

    async def end(self, request: QueueMessage) -> tuple[str, int]:
        """The message's end: (qmail_close's text, qp)."""
        if self.pool is not None:
            service, self.service = self.service, None
            if service is None:
                service = await self.pool.open()
            code, qp = await service.close(envelope_of(request), request.message)
            return codes.close_text(code), qp
        stream, self.stream = self.stream, None
        if stream is None:
            return await self._call(queue, self.ctx, self.env, request)
        return await self._call(finish_stream, stream, request)

    async def abandon(self) -> None:
        self._abandon_service()
        stream, self.stream = self.stream, None
        if stream is not None:
            await self._call(stream.abandon)

    def abandon_soon(self) -> None:
        """The connection failed mid-message: abandon without waiting for it."""
        self._abandon_service()
        stream, self.stream = self.stream, None
        if stream is None:
            return
        try:
            asyncio.get_running_loop().run_in_executor(self.executor, stream.abandon)
        except RuntimeError:  # no loop, or the executor has shut down
            stream.abandon()

    def _abandon_service(self) -> None:
        service, self.service = self.service, None
        if service is not None:
            service.abandon()


def envelope_of(request: QueueMessage) -> bytes:
    """qmail_from and qmail_to for ``request``: the envelope qmail-queue reads."""
    return encode_envelope(*addresses(request))


def _read_at_most(transport: asyncio.BaseTransport, size: int) -> None:
    """Have the loop's transport read ``size`` bytes at a time, not its 256 KiB:
    a buffer that big is mapped and unmapped again for every read (three more
    system calls for each command line); one of ``size`` comes from the heap."""
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = size  # type: ignore[attr-defined]


async def _write(writer: asyncio.StreamWriter, data: bytes, timeout: int) -> bool:
    """safewrite(): False when the write took ``timeout`` seconds (the program ends).

    drain() waits only while the transport has paused writing, which it
    does once more than its high-water mark is held: up to that (a reply the
    kernel took whole, or uvloop's loop holding it to the end of the loop's
    turn) no timer is set. uvloop 0.21 gives its low-water mark as 16 bytes,
    so waiting from there would set one for most replies. A connection that
    reads nothing still has its buffer pass the mark and its write timed.
    """
    writer.write(data)
    transport = writer.transport
    if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
        return True
    try:
        async with asyncio.timeout(timeout):
            await writer.drain()
    except TimeoutError:
        return False
    return True


class ReadLimit:
    """timeoutread()'s limit on each read of one connection, with one timer.

    ``asyncio.timeout()`` around each read sets a timer and cancels it, and
    looks the task up, each time: about 4 µs, more than the read of a
    command costs otherwise. Here one timer follows the connection: each
    read moves the deadline on (a store), and the timer, when it fires
    before the deadline, sets itself again for it; between reads it lets
    the connection be (a reply being written, a message being queued).
    """

    def __init__(self, seconds: float) -> None:
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.seconds = seconds
        self.deadline: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.expired = False

    async def read(self, reader: asyncio.StreamReader, size: int) -> bytes | None:
        """Up to ``size`` bytes; None when none came within the limit."""
        self.deadline = self.loop.time() + self.seconds
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self._fire)
        cancelling = self.task.cancelling()
        try:
            return await reader.read(size)
        except asyncio.CancelledError:
            if self.expired and self.task.uncancel() <= cancelling:
                return None  # ours: the time ran out (anyone else's goes on up)
            raise
        finally:
            self.deadline = None
            self.expired = False

    def _fire(self) -> None:
        self.timer = None
        if self.deadline is None:
            return  # no read under way: the next one sets a timer again
        if self.loop.time() >= self.deadline:
            self.expired = True
            self.task.cancel()
        else:
            self.timer = self.loop.call_at(self.deadline, self._fire)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


async def _converse(
    core: SmtpCore,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    run: QueueRun,
) -> int:
    limit = ReadLimit(core.config.timeout)
    try:
        return await _conversation(core, reader, writer, run, limit)
    finally:
        limit.close()


async def _conversation(
    core: SmtpCore,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    run: QueueRun,
    limit: ReadLimit,
) -> int:
    while True:
        event = core.next_event()
        if isinstance(event, MessageAbandoned):
            await run.abandon()  # as qmail_close() before the reply that says why
        out = core.data_to_send()
        if out and not await _write(writer, out, core.config.timeout):
            return 1
        if isinstance(event, Closed):
            return event.exit_code
        if isinstance(event, MessageData):
            await run.put(event.data)
        elif isinstance(event, QueueMessage):
            core.queue_result(*await run.end(event))
        elif not isinstance(event, MessageAbandoned):
            data = await limit.read(reader, READ_SIZE)
            if data is None:
                core.timeout()
            else:
                core.receive_data(data)


async def handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    env: Mapping[str, str],
    ctx: ProgramContext,
    executor: Executor | None = None,
    pool: ServicePool | None = None,
) -> int:
    """One SMTP connection; returns what qmail-smtpd's exit code would be.

    qmail-queue runs in ``executor`` (the loop's default when None); the
    server gives it one thread per allowed connection, as each qmail-smtpd
    would have its own qmail-queue process. With ``pool``, messages go to
    the queue service from the loop (server.queue.service_async).
    """
    try:
        try:
            ipme = for_runtime(ctx.runtime)
            config = load_config(ctx.home, env, ipme=ipme, patches=ctx.patches)
        except TempFail:
            writer.write(replies.CONTROL)
            await writer.drain()
            return 1
        _read_at_most(writer.transport, READ_SIZE)
        run = QueueRun(ctx, env, executor, pool)
        # through the service, a run costs no thread: open it at DATA, as qmail does
        core = make_core(config, ctx, env, stream=PIECE, open_at_data=run.pool is not None)
        try:
            return await _converse(core, reader, writer, run)
        finally:
            run.abandon_soon()  # only left open when the connection failed mid-message
    except (ConnectionError, OSError):
        return 1  # safewrite()/saferead(): the connection failing ends the program
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
