"""``qmail-sim serve --send``: qmail-send in a thread of the server's process.

The thread runs :func:`server.send.program.run_send`; the service has
started once qmail-send runs its loop (it has taken its mutex), and ends when
it returns. The process's ALRM and HUP are passed on to it, and closing the
service is its TERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from harness.commands.serve import EXIT_TEMP, Service, StartFailed
from server.programs import ProgramContext

if TYPE_CHECKING:
    from server.send.program import SignalRouter


def send_services(
    args: argparse.Namespace, ctx: ProgramContext, env: Mapping[str, str]
) -> list[Service]:
    """qmail-send in a thread of its own; closing the service is its SIGTERM."""
    if not getattr(args, "send", False):
        return []
    send = _SendThread(ctx, env, args.default_delivery)
    forward = send.router.handle
    return [
        Service(
            name="delivery",
            start=send.start,
            close=send.close,
            # the process gets the signals qmail-send would; its thread cannot
            signals={
                signal.SIGALRM: lambda: forward(signal.SIGALRM, None),
                signal.SIGHUP: lambda: forward(signal.SIGHUP, None),
            },
            ended=send.ended,
        )
    ]


class _SendThread:
    """run_send in a thread: started once its loop runs, ended when it returns."""

    def __init__(self, ctx: ProgramContext, env: Mapping[str, str], delivery: str) -> None:
        from server.send.program import SignalRouter

        self.ctx = ctx
        self.env = env
        self.delivery = delivery
        self.router: SignalRouter = SignalRouter(on_attach=self._attached)
        self.thread = threading.Thread(target=self._run, name="qmail-send")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: asyncio.Future[int] | None = None
        self._ended: asyncio.Future[int] | None = None

    def _settle(self, future: asyncio.Future[int] | None, value: int) -> None:
        """Complete ``future`` from qmail-send's thread (once; the loop may be gone)."""
        loop = self._loop
        if loop is None or future is None:
            return

        def set_value() -> None:
            if not future.done():
                future.set_result(value)

        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(set_value)

    def _attached(self) -> None:
        self._settle(self._started, 0)

    def _run(self) -> None:
        from server.send.program import line_writer, run_send

        code = EXIT_TEMP
        try:
            log = line_writer(sys.stdout.buffer)
            code = run_send(
                self.ctx, self.env, log, default_delivery=self.delivery, router=self.router
            )
        finally:
            self._settle(self._ended, code)

    async def start(self) -> str:
        """Wait until qmail-send runs its loop, or has given up (its log says why)."""
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.create_future()
        self._ended = self._loop.create_future()
        self.thread.start()
        await asyncio.wait([self._started, self._ended], return_when=asyncio.FIRST_COMPLETED)
        if not self._started.done():
            raise StartFailed(None, self._ended.result() or EXIT_TEMP)
        return "qmail-send"

    async def ended(self) -> int:
        assert self._ended is not None
        return await asyncio.shield(self._ended)

    async def close(self) -> None:
        if self.thread.is_alive():  # a TERM after its loop has ended would go nowhere
            self.router.handle(signal.SIGTERM, None)
            await asyncio.to_thread(self.thread.join)
