"""serve's qmail-smtpd (server.smtpd.live.handle) streams a message to the queue as it arrives.

The connection runs in-process on 127.0.0.1 with the real queue writer; a
FileOps that records the size of every write into ``mess/`` shows the
message going to disk in pieces, never built whole, and what ends in the
queue is byte for byte what qmail-smtpd the program (which holds a message
whole) queues from the same session.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server.home import setup
from server.programs import ProgramContext
from server.runtime import FileOps, StrPath, virtual_runtime
from server.smtpd import live, replies
from server.smtpd import program as smtpd_program

pytestmark = pytest.mark.live

ENV = {"TCPREMOTEIP": "127.0.0.1", "TCPLOCALIP": "127.0.0.1"}
HEAD = b"HELO client.example\r\nMAIL FROM:<a@far.example>\r\nRCPT TO:<bob@mx.example.org>\r\n"
LINE = b"Lorem ipsum dolor sit amet, .consectetur adipiscing elit, sed do eiusmod\r\n"


def body(size: int) -> bytes:
    """About ``size`` bytes of lines, some dot-stuffed or empty, then the final dot."""
    lines = [LINE] * 5 + [b"..a line that starts with a dot\r\n", b"\r\n"]
    out = bytearray(b"Subject: big\r\n\r\n")
    for line in itertools.cycle(lines):
        if len(out) >= size:
            break
        out += line
    return bytes(out) + b".\r\n"


class MessWrites(FileOps):
    """The real file steps, recording how many bytes each write into mess/ carried."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.started = threading.Event()
        #: whether each descriptor open_new gave last is a message's (the pid
        #: file becomes mess/N) or its intd/N
        self.mess: dict[int, bool] = {}

    def open_new(self, path: StrPath, mode: int = 0o644) -> int:
        fd = super().open_new(path, mode)
        self.mess[fd] = "pid" in Path(path).parts
        return fd

    def write(self, fd: int, data: bytes) -> None:
        if self.mess.get(fd):
            self.sizes.append(len(data))
        super().write(fd, data)
        self.started.set()


def context(home: Path, fileops: FileOps) -> ProgramContext:
    runtime, _ = virtual_runtime()
    runtime.fileops = fileops
    return ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO(), inprocess=True)


Client = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bytes]]


def one_connection(ctx: ProgramContext, env: dict[str, str], client: Client) -> tuple[bytes, int]:
    """handle() for one connection on 127.0.0.1: (what the client read, exit code)."""

    async def main() -> tuple[bytes, int]:
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[int] = loop.create_future()
        with ThreadPoolExecutor(2) as executor:

            async def connection(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                ended.set_result(await live.handle(r, w, env, ctx, executor))

            server = await asyncio.start_server(connection, "127.0.0.1", 0)
            async with server:
                port = server.sockets[0].getsockname()[1]
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    heard = await client(reader, writer)
                finally:
                    writer.close()
                code = await asyncio.wait_for(ended, 60)
        return heard, code

    return asyncio.run(main())


def sender_of(data: bytes, chunk: int) -> Client:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        try:
            for start in range(0, len(data), chunk):
                writer.write(data[start : start + chunk])
                await writer.drain()
            writer.write_eof()
        except ConnectionError:
            pass  # the server has hung up: what it said is still to be read
        return await reader.read()

    return client


def mess_files(home: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((home / "queue" / "mess").rglob("*")) if p.is_file()]


def test_a_big_message_goes_to_mess_in_pieces(home: Path, tmp_path: Path) -> None:
    size = 3 * live.PIECE + 12345
    session = HEAD + b"DATA\r\n" + body(size) + b"QUIT\r\n"
    writes = MessWrites()
    heard, code = one_connection(context(home, writes), ENV, sender_of(session, 50000))
    assert code == 0
    assert heard.split(b"\r\n")[-3].startswith(b"250 ok ")
    # Never the whole message in one write: pieces of about PIECE, give or
    # take a read, plus the Received lines on the first.
    assert len(writes.sizes) >= 3
    assert max(writes.sizes) <= live.PIECE + live.READ_SIZE + 1024
    [streamed] = mess_files(home)
    assert sum(writes.sizes) == len(streamed)
    # The program holds it whole: the same session gives the same bytes.
    other = tmp_path / "other"
    setup(other, me="mx.example.org")
    stdout = io.BytesIO()
    ctx = context(other, FileOps())
    assert smtpd_program.main(["qmail-smtpd"], ENV, io.BytesIO(session), stdout, ctx) == 0
    assert mess_files(other) == [streamed]


def test_a_small_message_is_queued_in_one_write(home: Path) -> None:
    session = HEAD + b"DATA\r\nSubject: small\r\n\r\nhello\r\n.\r\nQUIT\r\n"
    writes = MessWrites()
    _heard, code = one_connection(context(home, writes), ENV, sender_of(session, 7))
    assert code == 0
    assert len(writes.sizes) == 1  # as write_queue: one append, with the fsync
    assert mess_files(home)[0].endswith(b"\nSubject: small\n\nhello\n")


def test_over_databytes_reads_to_the_dot_and_leaves_nothing(home: Path) -> None:
    session = HEAD + b"DATA\r\n" + body(2 * live.PIECE) + b"NOOP\r\nQUIT\r\n"
    writes = MessWrites()
    env = {**ENV, "DATABYTES": str(live.PIECE + 1000)}
    heard, code = one_connection(context(home, writes), env, sender_of(session, 65536))
    assert code == 0
    assert writes.sizes  # it had started to stream
    assert heard.split(b"\r\n")[-4:] == [
        replies.DATABYTES.rstrip(),
        b"250 ok",
        b"221 mx.example.org",
        b"",
    ]
    assert mess_files(home) == []


@pytest.mark.parametrize("cut", [b"", b"bare\nLF\r\n"], ids=["hang-up", "stray-newline"])
def test_a_connection_ending_mid_message_leaves_nothing(home: Path, cut: bytes) -> None:
    session = HEAD + b"DATA\r\n" + body(2 * live.PIECE)[:-3] + cut
    writes = MessWrites()
    _heard, code = one_connection(context(home, writes), ENV, sender_of(session, 65536))
    assert code == 1
    assert writes.sizes
    assert mess_files(home) == []
    assert not any((home / "queue" / "pid").iterdir())


def test_a_connection_reset_mid_message_leaves_nothing(home: Path) -> None:
    writes = MessWrites()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        writer.write(HEAD + b"DATA\r\n" + body(2 * live.PIECE)[:-3])
        await writer.drain()
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, writes.started.wait, 60)  # it streams
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a reset, not an end of input
        return b""

    _heard, code = one_connection(context(home, writes), ENV, client)
    assert code == 1
    assert writes.sizes
    assert mess_files(home) == []  # the worker threads are done once it returns


def test_no_command_within_timeoutsmtpd_is_451_and_the_end(home: Path) -> None:
    """live.ReadLimit: a read that gets nothing within timeoutsmtpd (0 here:
    the connection's timer fires at the loop's next turn) is die_alarm()."""
    (home / "control" / "timeoutsmtpd").write_text("0\n")

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        return await reader.read()  # sends nothing, hears all until the server hangs up

    heard, code = one_connection(context(home, FileOps()), ENV, silent)
    assert heard.startswith(b"220 ") and heard.endswith(replies.TIMEOUT)
    assert code == 1


def test_a_read_limit_lets_another_cancel_through() -> None:
    """A cancel that is not the limit's (the server stopping) goes on up."""

    async def main() -> None:
        reader = asyncio.StreamReader()

        async def reading() -> bytes | None:
            return await live.ReadLimit(1200).read(reader, 10)

        task = asyncio.create_task(reading())
        await asyncio.sleep(0)  # the read is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def fed() -> bytes | None:
            limit = live.ReadLimit(1200)
            reader.feed_data(b"HELO x\r\n")
            got = await limit.read(reader, 10)
            limit.close()
            return got

        assert await fed() == b"HELO x\r\n"

    asyncio.run(main())
