"""``qmail-sim serve --qmtp/--qmqp``: qmail-qmtpd's and qmail-qmqpd's services.

Each listener is our tcpserver (as for ``--smtp``: ``--rules`` applies to
QMTP, ``--concurrency`` and ``--localname`` to both) running the program's
core in this process for each connection (:mod:`server.qmqp.live`), queueing
here too through a pool of worker threads.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from harness.commands.serve import Service, _close_all, _listen
from server.programs import ProgramContext

if TYPE_CHECKING:
    from server.qmqp.framing import NetstringCore
    from server.tcp.listener import TcpServer


def netstring_services(
    args: argparse.Namespace, ctx: ProgramContext, env: Mapping[str, str]
) -> list[Service]:
    """--qmtp and --qmqp: qmail-qmtpd's and qmail-qmqpd's cores (server.qmqp.live)."""
    from server.qmqp.qmqpd import QmqpCore
    from server.qmqp.qmtpd import QmtpCore

    qmtp = [_netstring_service("qmtp", QmtpCore, args.rules, a, ctx, env, args) for a in args.qmtp]
    qmqp = [_netstring_service("qmqp", QmqpCore, None, a, ctx, env, args) for a in args.qmqp]
    return qmtp + qmqp


def _netstring_service(
    kind: str,
    core: type[NetstringCore],
    rules: Path | None,
    address: tuple[str, int],
    ctx: ProgramContext,
    base_env: Mapping[str, str],
    args: argparse.Namespace,
) -> Service:
    from server.qmqp.live import handle

    host, port = address
    servers: list[TcpServer] = []
    threads = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="qmail-queue")

    async def connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        await handle(core, reader, writer, env, ctx, threads)

    async def start() -> str:
        return await _listen(kind, servers, host, port, connection, rules, base_env, args)

    async def close() -> None:
        await _close_all(servers)
        threads.shutdown(wait=True)

    return Service(name=kind, start=start, close=close)
