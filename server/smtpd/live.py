"""qmail-smtpd in an asyncio server: the same core, one coroutine per connection.

:func:`handle` is the in-process equivalent of tcpserver starting
``bin/qmail-smtpd``: it reads the controls afresh for each connection (as a
new qmail-smtpd process would), writes the core's replies before every read,
waits ``timeoutsmtpd`` seconds for each buffer, and runs qmail-queue in a
worker thread so that one connection's fsyncs do not stall the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from server.errors import TempFail
from server.programs import ProgramContext
from server.smtpd import replies
from server.smtpd.core import Closed, QueueMessage, SmtpCore
from server.smtpd.ipme import local_ips
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
) -> int:
    while True:
        event = core.next_event()
        out = core.data_to_send()
        if out:
            writer.write(out)
            await writer.drain()
        if isinstance(event, Closed):
            return event.exit_code
        if isinstance(event, QueueMessage):
            core.queue_result(*await asyncio.to_thread(queue, ctx, env, event))
            continue
        try:
            data = await asyncio.wait_for(reader.read(READ_SIZE), core.config.timeout)
        except TimeoutError:
            core.timeout()
        else:
            core.receive_data(data)


async def handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    env: Mapping[str, str],
    ctx: ProgramContext,
) -> int:
    """One SMTP connection; returns what qmail-smtpd's exit code would be."""
    try:
        try:
            config = load_config(ctx.home, env, ipme=local_ips(), patches=ctx.patches)
        except TempFail:
            writer.write(replies.CONTROL)
            await writer.drain()
            return 1
        return await _converse(make_core(config, ctx, env), reader, writer, ctx, env)
    except (ConnectionError, OSError):
        return 1  # safewrite()/saferead(): the connection failing ends the program
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
