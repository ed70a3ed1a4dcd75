"""``qmail-smtpd``: the program, speaking SMTP on stdin/stdout (qmail-smtpd(8)).

It runs under tcpserver (ours or ucspi-tcp's), which puts the TCP* variables
and RELAYCLIENT into the environment. :func:`main` reads the controls
(setup()), finds this host's addresses (ipme_init), then drives
:class:`~server.smtpd.core.SmtpCore`: write what it said, read at most 1024
bytes (qmail's ssinbuf) with a ``timeoutsmtpd`` limit, feed it, and run
qmail-queue (:func:`server.queue.client.queue_message`) when it asks.

Exit codes are qmail-smtpd's: 0 after QUIT, 1 for everything else (end of
input, timeout, a stray newline, unreadable controls).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, BinaryIO

from server.date822 import session_date
from server.errors import TempFail
from server.programs import ProgramContext
from server.smtpd import replies
from server.smtpd.core import Closed, QueueMessage, SmtpCore
from server.smtpd.policy import SmtpdConfig, load_config
from server.timedread import Reader, timed_reader

if TYPE_CHECKING:
    from server.queue.client import QueueStream

#: qmail-smtpd.c's ssinbuf.
READ_SIZE = 1024


def make_core(
    config: SmtpdConfig,
    ctx: ProgramContext,
    env: Mapping[str, str],
    *,
    stream: int = 0,
    open_at_data: bool = False,
) -> SmtpCore:
    """A core whose clock is the runtime's and whose dates follow the patches."""
    date = session_date(config.date_localtime, env, ctx.home)
    return SmtpCore(
        config, now=ctx.runtime.now, date=date, stream=stream, open_at_data=open_at_data
    )


def addresses(request: QueueMessage) -> tuple[str, list[str]]:
    """What qmail_from and qmail_to get for ``request``: the sender, the recipients."""
    from server.queue.envelope import addr_str

    return addr_str(request.sender), [addr_str(r) for r in request.recipients]


def queue(ctx: ProgramContext, env: Mapping[str, str], request: QueueMessage) -> tuple[str, int]:
    """qmail_open ... qmail_close for one message: (error text, qp)."""
    from server.queue.client import queue_message

    sender, recipients = addresses(request)
    result = queue_message(ctx, env, request.message, sender, recipients, invoker="network")
    return result.error, result.qp


def open_stream(ctx: ProgramContext, env: Mapping[str, str], first: bytes) -> QueueStream:
    """qmail_open and the first qmail_put, for a message that streams (MessageData)."""
    from server.queue.client import open_queue

    stream = open_queue(ctx, env, invoker="network")
    stream.put(first)
    return stream


def finish_stream(stream: QueueStream, request: QueueMessage) -> tuple[str, int]:
    """The last qmail_put, qmail_from, qmail_to, qmail_close: (error text, qp)."""
    stream.put(request.message)
    result = stream.close(*addresses(request))
    return result.error, result.qp


def converse(
    core: SmtpCore,
    read: Reader,
    write: Callable[[bytes], None],
    run_queue: Callable[[QueueMessage], tuple[str, int]],
) -> int:
    """Drive ``core`` to its end; the exit code."""
    while True:
        event = core.next_event()
        out = core.data_to_send()
        if out:
            write(out)  # flush before every read (saferead) and at every exit
        if isinstance(event, Closed):
            return event.exit_code
        if isinstance(event, QueueMessage):
            core.queue_result(*run_queue(event))
            continue
        data = read(core.config.timeout)
        if data is None:
            core.timeout()
        else:
            core.receive_data(data)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    try:
        from server.smtpd.ipme import for_runtime

        ipme = for_runtime(ctx.runtime)
        config = load_config(ctx.home, env, ipme=ipme, patches=ctx.patches)
    except TempFail:
        write(replies.CONTROL)
        return 1
    try:
        return converse(
            make_core(config, ctx, env),
            timed_reader(stdin, READ_SIZE),
            write,
            lambda request: queue(ctx, env, request),
        )
    except (BrokenPipeError, ConnectionError):
        return 1  # safewrite(): a failed write is _exit(1)
