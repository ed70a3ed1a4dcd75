"""tcpserver and a client that resets its connection before it is served.

tcpserver.c takes the client's address from accept(), never from
getpeername(): a connection reset while it waited in the listen queue is
still accepted on Linux, and served (the program then reads a reset).
Only getsockname() failing is "unable to get local address", and a banner
that cannot be written is "unable to print banner". With ``-c 1`` and the
one slot held, the second client's reset happens before it is accepted,
every time, without sleeping.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from server.tcp.listener import TcpServer, serve

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
DROP = "tcpserver: warning: dropping connection, "


def run(coro: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro(), timeout=20)

    return asyncio.run(bounded())


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Log:
    """The server's log lines, with a wait for the n-th "end" line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.changed = asyncio.Event()

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.changed.set()

    async def ends(self, n: int) -> None:
        while sum(line.startswith("tcpserver: end ") for line in self.lines) < n:
            self.changed.clear()
            await self.changed.wait()


async def served_after_reset(
    banner: bytes,
) -> tuple[list[str], list[dict[str, str]], int]:
    """Hold the one slot, reset a second client, free the slot; what happened."""
    log = Log()
    envs: list[dict[str, str]] = []
    first_in, release = asyncio.Event(), asyncio.Event()

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        envs.append(env)
        if len(envs) == 1:
            first_in.set()
            await release.wait()

    server: TcpServer = await serve(
        LOOPBACK, 0, handler, None, 1, banner=banner, verbosity=2, log=log
    )
    try:
        first = socket.create_connection((LOOPBACK, server.port))
        await first_in.wait()
        second = socket.create_connection((LOOPBACK, server.port))
        second_port = second.getsockname()[1]
        reset(second)  # still in the listen queue: the one slot is taken
        release.set()
        await log.ends(2)
        first.close()
    finally:
        await server.close()
    return log.lines, envs, second_port


@pytest.mark.live
def test_a_client_reset_before_accept_is_served_with_its_address() -> None:
    lines, envs, port = run(lambda: served_after_reset(b""))
    assert not [line for line in lines if line.startswith(DROP)]
    assert len(envs) == 2
    assert envs[1]["TCPREMOTEIP"] == LOOPBACK
    assert envs[1]["TCPREMOTEPORT"] == str(port)
    assert "tcpserver: pid 2 from 127.0.0.1" in lines
    assert "tcpserver: end 2 status 0" in lines


@pytest.mark.live
def test_a_banner_to_a_reset_client_is_unable_to_print_banner() -> None:
    lines, envs, _ = run(lambda: served_after_reset(b"220 hello\r\n"))
    assert len(envs) == 1
    second = lines[lines.index("tcpserver: pid 2 from 127.0.0.1") :]
    assert second[:3] == [
        "tcpserver: pid 2 from 127.0.0.1",
        f"{DROP}unable to print banner: connection reset",
        "tcpserver: end 2 status 28416",  # exit 111
    ]


# --- the same, as processes, against Debian's tcpserver ---------------------------


def _mask(lines: list[str]) -> list[str]:
    """Pids and ports differ from run to run; the rest must not."""
    out = []
    for line in lines:
        line = re.sub(r"^(tcpserver: (?:pid|ok|deny|end)) \d+", r"\1 PID", line)
        out.append(re.sub(r":\d+(\s|$)", r":PORT\1", line))
    return out


def _until(stream: list[str], proc: subprocess.Popen[str], prefix: str, n: int) -> None:
    """Read the server's stderr until the n-th line starting with ``prefix``."""
    assert proc.stderr is not None
    while sum(line.startswith(prefix) for line in stream) < n:
        line = proc.stderr.readline()
        assert line, f"tcpserver exited early: {stream}"
        stream.append(line.rstrip("\n"))


def _reset_run(argv: list[str], out: Path, banner: list[str]) -> tuple[list[str], list[str]]:
    program = f'echo "$TCPREMOTEIP" >> {out}; exec cat >/dev/null 2>&1'
    command = [*argv, "-v", "-1", "-c", "1", "-H", "-R", "-l", "mx", *banner]
    proc = subprocess.Popen(
        [*command, LOOPBACK, "0", "sh", "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        first = socket.create_connection((LOOPBACK, port))
        _until(lines, proc, "tcpserver: ok ", 1)  # the first client holds the slot
        reset(socket.create_connection((LOOPBACK, port)))
        first.close()
        _until(lines, proc, "tcpserver: end ", 2)
    finally:
        proc.terminate()
        proc.communicate()
    served = out.read_text().split() if out.exists() else []
    return _mask(lines), served


@pytest.mark.live
@pytest.mark.external
@pytest.mark.parametrize("banner", [[], ["-B", "220 hello\r\n"]], ids=["plain", "banner"])
def test_reset_clients_fare_as_with_debian_tcpserver(tmp_path: Path, banner: list[str]) -> None:
    if shutil.which("tcpserver") is None:
        pytest.skip("tcpserver (Debian ucspi-tcp) not installed")
    theirs = _reset_run(["tcpserver"], tmp_path / "theirs", banner)
    ours = _reset_run([sys.executable, "-m", "server", "tcpserver"], tmp_path / "ours", banner)
    assert ours == theirs
    assert theirs[1] == ([LOOPBACK, LOOPBACK] if not banner else [LOOPBACK])
