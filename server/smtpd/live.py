"""qmail-smtpd in an asyncio server: the same core, one coroutine per connection.

:func:`handle` is the in-process equivalent of tcpserver starting
``bin/qmail-smtpd``: it reads the controls afresh for each connection (as a
new qmail-smtpd process would), writes the core's replies before every read,
waits ``timeoutsmtpd`` seconds for each buffer, and runs qmail-queue in a
worker thread so that one connection's fsyncs do not stall the others (and
concurrent fsyncs share the file system's journal commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from concurrent.futures import Executor

from server.errors import TempFail
from server.programs import ProgramContext
from server.smtpd import replies
from server.smtpd.core import Closed, QueueMessage, SmtpCore
from server.smtpd.ipme import for_runtime
from server.smtpd.policy import load_config
from server.smtpd.program import make_core, queue

#: Bytes asked for per read. qmail reads 1024 at a time; the size of a read
#: changes nothing a client can see, and bigger reads cost less here.
READ_SIZE = 65536


async def _converse(
    core: SmtpCore,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ProgramContext,
    env: Mapping[str, str],
    executor: Executor | None,
) -> int:
    loop = asyncio.get_running_loop()
    while True:
        event = core.next_event()
        out = core.data_to_send()
        if out:
            writer.write(out)
            try:  # safewrite(): a write that takes timeoutsmtpd seconds ends it
                async with asyncio.timeout(core.config.timeout):
                    await writer.drain()
            except TimeoutError:
                return 1
        if isinstance(event, Closed):
            return event.exit_code
        if isinstance(event, QueueMessage):
            job = functools.partial(queue, ctx, env, event)
            core.queue_result(*await loop.run_in_executor(executor, job))
            continue
        try:
            async with asyncio.timeout(core.config.timeout):
                data = await reader.read(READ_SIZE)
        except TimeoutError:
            core.timeout()
        else:
            core.receive_data(data)


async def handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    env: Mapping[str, str],
    ctx: ProgramContext,
    executor: Executor | None = None,
) -> int:
    """One SMTP connection; returns what qmail-smtpd's exit code would be.

    qmail-queue runs in ``executor`` (the loop's default when None); the
    server gives it one thread per allowed connection, as each qmail-smtpd
    would have its own qmail-queue process.
    """
    try:
        try:
            ipme = for_runtime(ctx.runtime)
            config = load_config(ctx.home, env, ipme=ipme, patches=ctx.patches)
        except TempFail:
            writer.write(replies.CONTROL)
            await writer.drain()
            return 1
        core = make_core(config, ctx, env)
        return await _converse(core, reader, writer, ctx, env, executor)
    except (ConnectionError, OSError):
        return 1  # safewrite()/saferead(): the connection failing ends the program
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
