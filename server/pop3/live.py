"""The live POP3 service: ``qmail-popup HOST checkpassword qmail-pop3d Maildir`` per connection.

What ``tcpserver 0 110 qmail-popup HOST checkpassword qmail-pop3d Maildir``
does, in one asyncio process: each connection gets tcpserver's environment
(``PROTO``, ``TCPLOCALIP``, ``TCPLOCALPORT``, ``TCPREMOTEIP``,
``TCPREMOTEPORT``) and runs the three programs in-process, in a worker
thread, with stdin/stdout bridged to the connection's streams. Used by
``qmail-sim serve --pop3 HOST:PORT``.

Each session holds a thread for as long as its client stays connected
(up to the 20 minutes below), so the server gives :class:`Pop3Service` an
executor with a thread per allowed connection (tcpserver ``-c``); asyncio's
default one has only min(32, cores + 4) and would leave later clients
waiting for a banner.

The bridge turns an idle client (no line for :data:`IDLE_TIMEOUT` seconds,
qmail-popup's and qmail-pop3d's 20 minutes) into end of input, which both
programs answer by exiting without a word, as their timeoutread() does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
from collections.abc import Coroutine
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from server.control import ControlDir
from server.pop3.core import MAX_LINE, LineTooLong
from server.pop3.stream import IDLE_TIMEOUT
from server.programs import ProgramContext, read_patches, run
from server.runtime import real_runtime

CHECKPASSWORD = "checkpassword"


class _StreamIn(io.RawIOBase):
    """A blocking reader (for the worker thread) over an asyncio StreamReader."""

    def __init__(self, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        self._reader = reader
        self._loop = loop

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1, /) -> bytes:
        """What has arrived, up to ``size`` bytes (qmail-popup's read())."""
        return self._wait(self._reader.read(size if size > 0 else 65536))

    def readline(self, size: int | None = -1) -> bytes:
        return self._wait(_readline(self._reader))

    def _wait(self, reading: Coroutine[Any, Any, bytes]) -> bytes:
        """Input within IDLE_TIMEOUT; b"" (end of input) after it or a broken connection."""
        future = asyncio.run_coroutine_threadsafe(reading, self._loop)
        try:
            return future.result(timeout=IDLE_TIMEOUT)
        except FutureTimeout:
            future.cancel()
            return b""
        except ConnectionError:
            return b""


async def _readline(reader: asyncio.StreamReader) -> bytes:
    """A line through LF of any length up to MAX_LINE, whatever the reader's limit."""
    parts: list[bytes] = []
    total = 0
    while True:
        try:
            return b"".join([*parts, await reader.readuntil(b"\n")])
        except asyncio.IncompleteReadError:
            return b""  # end of input inside a line: the line is dropped
        except asyncio.LimitOverrunError as exc:
            chunk = await reader.readexactly(exc.consumed)
            parts.append(chunk)
            total += len(chunk)
            if total > MAX_LINE:
                raise LineTooLong(total) from exc


class _StreamOut(io.RawIOBase):
    """A blocking writer over an asyncio StreamWriter; flush() waits for drain().

    close() does not flush (IOBase's would): it runs on the loop's thread, or
    from a garbage collection anywhere, where waiting for the loop would hang.
    """

    def __init__(self, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        self._writer = writer
        self._loop = loop
        self._done = False

    def close(self) -> None:
        self._done = True

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._loop.call_soon_threadsafe(self._writer.write, bytes(data))
        return len(data)

    def flush(self) -> None:
        if self._done or self._loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._writer.drain(), self._loop)
        with contextlib.suppress(ConnectionError, FutureTimeout):
            future.result(timeout=IDLE_TIMEOUT)


@dataclass
class Pop3Service:
    """The POP3 programs for one qmail home, as a connection handler.

    :meth:`connection` has the ``handler(reader, writer, env)`` shape of
    :func:`server.tcp.listener.serve`, which supplies tcpserver's
    environment; :meth:`start` is a plain asyncio listener that makes the
    same variables itself. :meth:`aclose` hangs up on open sessions.
    Sessions run in ``executor`` (the loop's default when None).
    """

    ctx: ProgramContext
    hostname: str | None = None
    maildir: str = "Maildir"
    executor: Executor | None = None
    _active: dict[asyncio.Task[None], asyncio.StreamWriter] = field(
        default_factory=dict, init=False, repr=False
    )

    @classmethod
    def for_home(cls, home: Path, **kwargs: Any) -> Pop3Service:
        ctx = ProgramContext(
            home=home, runtime=real_runtime(), stderr=io.BytesIO(), patches=read_patches(home)
        )
        return cls(ctx, **kwargs)

    def argv(self) -> list[str]:
        host = self.hostname or ControlDir(self.ctx.home / "control").me or "localhost"
        return ["qmail-popup", host, CHECKPASSWORD, "qmail-pop3d", self.maildir]

    async def connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        """Run qmail-popup's chain for one client, in a worker thread."""
        task = asyncio.current_task()
        assert task is not None
        self._active[task] = writer
        loop = asyncio.get_running_loop()
        stdin = _StreamIn(reader, loop)
        stdout = _StreamOut(writer, loop)
        session = functools.partial(
            run,
            "qmail-popup",
            self.argv(),
            env,
            cast(BinaryIO, stdin),
            cast(BinaryIO, stdout),
            self.ctx,
        )
        try:
            await loop.run_in_executor(self.executor, session)
        finally:
            del self._active[task]
            stdout.close()
            stdin.close()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        local = writer.get_extra_info("sockname") or ("", 0)
        remote = writer.get_extra_info("peername") or ("", 0)
        env = {
            "PROTO": "TCP",
            "TCPLOCALIP": str(local[0]),
            "TCPLOCALPORT": str(local[1]),
            "TCPREMOTEIP": str(remote[0]),
            "TCPREMOTEPORT": str(remote[1]),
        }
        try:
            await self.connection(reader, writer, env)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def start(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._accepted, host, port)

    async def aclose(self) -> None:
        """Hang up on every client and wait for its worker thread to finish.

        Call it before the event loop stops: a worker blocked on the
        connection needs the loop to see end of input.
        """
        for writer in list(self._active.values()):
            writer.close()
        await asyncio.gather(*self._active, return_exceptions=True)


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as ``--pop3`` takes it."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"want HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)
