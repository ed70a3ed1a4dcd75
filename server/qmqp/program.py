"""Running qmail-qmtpd's and qmail-qmqpd's cores as programs on fd 0 and fd 1.

:func:`serve` is the loop both share: it reads at most 512 bytes at a time
(their ssinbuf) with qmail's ``alarm(3600)`` as the limit, writes what the
core flushed, and queues through :mod:`server.queue.client` as qmail.c's
qmail_open ... qmail_close, with ``Received: (qmail N invoked from
network)`` as qmail-queue words it for qmaild. A write that fails is
safewrite()'s ``_exit(0)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, BinaryIO

from server.date822 import session_date
from server.errors import TempFail
from server.programs import ProgramContext
from server.qmqp.config import QmtpdConfig, load_config
from server.qmqp.framing import (
    EXIT_RESOURCES,
    READ_SIZE,
    AbandonQueue,
    CloseQueue,
    Event,
    Exit,
    NetstringCore,
    OpenQueue,
    QueueData,
)
from server.timedread import Reader, timed_reader

if TYPE_CHECKING:
    from server.queue.client import QueueStream

#: sig_alarmcatch(resources); alarm(3600): the whole session's limit.
ALARM = 3600.0
CoreClass = type[NetstringCore]


def make_core(
    cls: CoreClass, config: QmtpdConfig, ctx: ProgramContext, env: Mapping[str, str]
) -> NetstringCore:
    date = session_date(config.date_localtime, env, ctx.home)
    core: NetstringCore = cls(config, now=ctx.runtime.now, date=date)
    return core


class QueueRuns:
    """The queue side of a session: qmail_open ... qmail_close for each message."""

    def __init__(self, ctx: ProgramContext, env: Mapping[str, str]) -> None:
        self.ctx = ctx
        self.env = env
        self.stream: QueueStream | None = None

    def handle(self, core: NetstringCore, event: Event) -> None:
        """Do what a queue event asks and give the core its answer."""
        from server.queue.client import open_queue
        from server.queue.envelope import addr_str

        if isinstance(event, OpenQueue):
            self.stream = open_queue(self.ctx, self.env, invoker="network")
            core.queue_opened(self.stream.qp)
        elif isinstance(event, QueueData):
            assert self.stream is not None
            self.stream.put(event.data)
        elif isinstance(event, CloseQueue):
            assert self.stream is not None
            stream, self.stream = self.stream, None
            result = stream.close(addr_str(event.sender), [addr_str(r) for r in event.recipients])
            core.queue_result(result.error.encode("latin-1"))
        else:
            self.abandon()

    def abandon(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.abandon()


QUEUE_EVENTS = (OpenQueue, QueueData, CloseQueue, AbandonQueue)


def converse(
    core: NetstringCore,
    read: Reader,
    write: Callable[[bytes], None],
    ctx: ProgramContext,
    env: Mapping[str, str],
) -> int:
    """Drive ``core`` to its exit; the exit code."""
    runs = QueueRuns(ctx, env)
    deadline = ctx.runtime.now() + ALARM
    while True:
        event = core.next_event()
        out = core.data_to_send()
        if out:
            write(out)
        if isinstance(event, Exit):
            return event.code
        if isinstance(event, QUEUE_EVENTS):
            runs.handle(core, event)
            continue
        data = read(max(deadline - ctx.runtime.now(), 0.0))
        if data is None:
            runs.abandon()
            return EXIT_RESOURCES
        core.receive_data(data)


def serve(
    cls: CoreClass,
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    """A program's main: read the setup, then :func:`converse` on stdin/stdout."""

    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    try:
        config = load_config(ctx.home, env, ctx.patches, controls=cls.reads_controls)
    except TempFail:
        return EXIT_RESOURCES
    try:
        return converse(
            make_core(cls, config, ctx, env), timed_reader(stdin, READ_SIZE), write, ctx, env
        )
    except (BrokenPipeError, ConnectionError):
        return 0  # safewrite(): a failed write is _exit(0)
