"""A listener that hands sessions to a helper process (Config.handoff_to).

serve_split runs qmail-smtpd as two serves: the first accepts, and hands a
new session to the second over a socket pair while it serves more than it
has handed over. Here both ends run in one event loop, which exercises the
same descriptors and messages: who serves which session, the -c limit
counting both, and the first serving everything once the helper is gone.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from server.tcp.listener import ENDED_MAX, TcpServer, listen_on, serve

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


def run(coro: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro(), timeout=20)

    return asyncio.run(bounded())


class Sessions:
    """Handlers for both servers: who served each client; each session is held
    open until its client's line is released."""

    def __init__(self, *, hold: bool = True) -> None:
        self.served: list[tuple[str, str]] = []  # (server, the client's line)
        self.hold = hold
        self.releases: dict[str, asyncio.Event] = {}
        self.changed = asyncio.Event()

    def handler(
        self, name: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]], Awaitable[None]]:
        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
        ) -> None:
            line = (await reader.readline()).decode().strip()
            self.served.append((name, line))
            self.changed.set()
            writer.write(f"{name} {env['TCPREMOTEIP']}\n".encode())
            await writer.drain()
            if self.hold:
                await self.releases.setdefault(line, asyncio.Event()).wait()

        return handle

    def release(self, *lines: str) -> None:
        for line in lines or tuple(line for _, line in self.served):
            self.releases.setdefault(line, asyncio.Event()).set()

    def server_of(self, line: str) -> str:
        return next(name for name, served in self.served if served == line)

    async def count(self, n: int) -> None:
        while len(self.served) < n:
            self.changed.clear()
            await self.changed.wait()


class Pair:
    """The accepting server and its helper, joined as serve_split joins them."""

    def __init__(self, first: TcpServer, second: TcpServer, ends: list[socket.socket]) -> None:
        self.first = first
        self.second = second
        self.ends = ends

    async def close(self) -> None:
        await self.first.close()
        await self.second.close(grace=0)
        for end in self.ends:
            end.close()


async def pair(sessions: Sessions, limit: int = 40) -> Pair:
    first_end, second_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    first = await serve(LOOPBACK, 0, sessions.handler("first"), None, limit, handoff_to=first_end)
    idle = listen_on(LOOPBACK, 0)  # the helper has a socket, but never accepts on it
    second = await serve(
        LOOPBACK, 0, sessions.handler("second"), None, limit,
        listening=idle, handoff_from=second_end,
    )  # fmt: skip
    return Pair(first, second, [first_end, second_end])


async def client(port: int, line: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(f"{line}\n".encode())
    await writer.drain()
    return reader, writer


async def turns(n: int = 20) -> None:
    """Let the loop run ``n`` rounds (an accept it would do, it does)."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_lone_client_is_always_served_by_the_first() -> None:
    async def main() -> list[tuple[str, str]]:
        sessions = Sessions(hold=False)
        servers = await pair(sessions)
        for i in range(5):
            reader, writer = await client(servers.first.port, f"c{i}")
            assert (await reader.readline()) == b"first 127.0.0.1\n"
            writer.close()
            await writer.wait_closed()
        await servers.close()
        return sessions.served

    assert run(main) == [("first", f"c{i}") for i in range(5)]


def test_sessions_at_once_are_shared_and_the_limit_counts_both() -> None:
    async def main() -> tuple[list[str], list[int], str, bytes]:
        sessions = Sessions()
        servers = await pair(sessions, limit=5)
        first, second = servers.first, servers.second
        clients = []
        for i in range(5):
            clients.append(await client(first.port, f"c{i}"))
            await sessions.count(i + 1)
        names = [name for name, _ in sessions.served]
        actives = [first.active, first.handed, second.active]
        # a sixth waits: 5 sessions run in the two processes together
        sixth = await client(first.port, "c5")
        await turns()
        assert len(sessions.served) == 5
        # one of the helper's sessions ending makes room for it
        sessions.release("c2")
        line = await sixth[0].readline()
        where = sessions.server_of("c5")
        sessions.release()
        for _reader, writer in [*clients, sixth]:
            writer.close()
        await servers.close()
        return names, actives, where, line

    names, actives, where, line = run(main)
    # a new session goes to the helper while the first serves more than it
    # handed over, not counting one that may be closing
    assert names == ["first", "first", "second", "first", "second"]
    assert actives == [5, 2, 2]
    assert where == "second"
    assert line == b"second 127.0.0.1\n"


def test_without_its_helper_the_first_serves_everything() -> None:
    async def main() -> tuple[list[str], int, int]:
        sessions = Sessions()
        servers = await pair(sessions)
        first = servers.first
        clients = [await client(first.port, f"c{i}") for i in range(3)]
        await sessions.count(3)
        assert first.handed == 1
        # the helper's process dies: its end of the pair closes
        await servers.second.close(grace=0)
        servers.ends[1].close()
        while first.config.handoff_to is not None:
            await turns(1)
        handed, active = first.handed, first.active
        more = [await client(first.port, f"d{i}") for i in range(3)]
        await sessions.count(6)
        sessions.release()
        for _reader, writer in [*clients, *more]:
            writer.close()
        await servers.close()
        return [name for name, _ in sessions.served[3:]], handed, active

    later, handed, active = run(main)
    assert later == ["first"] * 3
    assert (handed, active) == (0, 2)


def test_a_helper_tells_every_end_though_the_first_is_slow_to_hear() -> None:
    async def main() -> tuple[int, int, int]:
        first_end, second_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        first_end.setblocking(False)
        second_end.setblocking(False)
        filled = 0  # the first's buffer full, as if its loop had not read for a while
        while True:
            try:
                second_end.send(b"x")
            except BlockingIOError:
                break
            filled += 1
        sessions = Sessions(hold=False)
        idle = listen_on(LOOPBACK, 0)
        helper = await serve(
            LOOPBACK, 0, sessions.handler("second"), None, 40,
            listening=idle, handoff_from=second_end,
        )  # fmt: skip
        outside = listen_on(LOOPBACK, 0)  # stands for the first's listening socket
        loop = asyncio.get_running_loop()
        for i in range(3):
            reader, writer = await asyncio.open_connection(LOOPBACK, outside.getsockname()[1])
            conn, peer = await loop.sock_accept(outside)
            socket.send_fds(first_end, [f"{peer[0]} {peer[1]}".encode()], [conn.fileno()])
            conn.close()
            writer.write(f"c{i}\n".encode())
            assert (await reader.readline()) == b"second 127.0.0.1\n"
            writer.close()
            await writer.wait_closed()
        while helper.active:
            await turns(1)
        untold = helper._untold
        heard = 0  # now the first reads: the filling, then the three ends
        while heard < filled + 3:
            try:
                heard += len(first_end.recv(ENDED_MAX))
            except BlockingIOError:
                await turns(1)
        await helper.close(grace=0)
        for sock in (first_end, second_end, outside):
            sock.close()
        return untold, heard - filled, helper._untold

    untold, ends, left = run(main)
    assert (untold, ends, left) == (3, 3, 0)
