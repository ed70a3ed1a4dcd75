"""qmail-qmtpd and qmail-qmqpd in an asyncio server: the same cores, one
coroutine per connection (``qmail-sim serve --qmtp/--qmqp``, the live target).

:func:`handle` is the in-process equivalent of tcpserver starting
``bin/qmail-qmtpd`` or ``bin/qmail-qmqpd``: the controls are read afresh for
each connection, the core's flushed output is written before each read of
at most 512 bytes, the session ends after qmail's ``alarm(3600)``, and
each queue step runs in a worker thread so that one connection's fsyncs do
not stall the others.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from concurrent.futures import Executor

from server.errors import TempFail
from server.programs import ProgramContext
from server.qmqp.config import load_config
from server.qmqp.framing import EXIT_RESOURCES, READ_SIZE, Exit
from server.qmqp.program import ALARM, QUEUE_EVENTS, CoreClass, QueueRuns, make_core


async def handle(
    cls: CoreClass,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    env: Mapping[str, str],
    ctx: ProgramContext,
    executor: Executor | None = None,
) -> int:
    """One connection to its end; the program's exit code."""
    try:
        config = load_config(ctx.home, env, ctx.patches, controls=cls.reads_controls)
    except TempFail:
        writer.close()
        return EXIT_RESOURCES
    core = make_core(cls, config, ctx, env)
    runs = QueueRuns(ctx, env)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(ALARM):
            while True:
                event = core.next_event()
                out = core.data_to_send()
                if out:
                    writer.write(out)
                    await writer.drain()
                if isinstance(event, Exit):
                    return event.code
                if isinstance(event, QUEUE_EVENTS):
                    step = functools.partial(runs.handle, core, event)
                    await loop.run_in_executor(executor, step)
                    continue
                core.receive_data(await reader.read(READ_SIZE))
    except TimeoutError:
        return EXIT_RESOURCES
    except (ConnectionError, OSError):
        return 0  # safewrite()/saferead(): a failed write or read is _exit(0)
    finally:
        if runs.stream is not None:
            await loop.run_in_executor(executor, runs.abandon)
        writer.close()
