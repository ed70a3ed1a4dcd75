"""RFC 1413 ident (TCPREMOTEINFO) and qmail's tcp-env, live on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.tcp import ident
from server.tcp.tcpserver import serve

from .ptrdns import ptr_dns_home

LOOPBACK = "127.0.0.1"


def test_query_format() -> None:
    assert ident.query(6191, 23) == b"6191 , 23\r\n"


@pytest.mark.parametrize(
    ("reply", "info"),
    [
        (b"6191, 23 : USERID : UNIX : joe\r\n", "joe"),
        (b"6191,23:USERID:UNIX:j o\te\r\n", "joe"),  # blanks dropped, as remoteinfo.c
        (b"1,2:USERID:UNIX,UTF-8:a:b\n", "a:b"),
        (b"6191, 23 : ERROR : NO-USER\r\n", ""),
        (b"6191, 23 : USERID : UNIX : joe", None),  # no newline yet
    ],
)
def test_parse_reply(reply: bytes, info: str | None) -> None:
    assert ident.parse_reply(reply) == info


def test_parse_reply_caps_length() -> None:
    info = ident.parse_reply(b"1,2:USERID:UNIX:" + b"x" * 2000)
    assert info == "x" * 998  # qmail's remoteinfo.c
    assert ident.parse_reply(b"1,2:U:U:" + b"x" * 300, ident.UCSPI_MAX_INFO) == "x" * 257


@given(st.binary(max_size=80))
def test_parse_reply_never_raises(data: bytes) -> None:
    whole = ident.parse_reply(data)
    if whole is not None:  # trailing bytes after the line change nothing
        assert ident.parse_reply(data + b"more:stuff\n") == whole


async def _fake_identd(answer: bytes, queries: list[bytes]) -> asyncio.Server:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queries.append(await reader.readline())
        writer.write(answer)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(reply, LOOPBACK, 0)


@pytest.mark.live
def test_tcpserver_sets_remoteinfo_from_identd() -> None:
    queries: list[bytes] = []
    seen: list[dict[str, str]] = []

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        seen.append(env)

    async def scenario() -> tuple[int, int]:
        identd = await _fake_identd(b"x , y : USERID : UNIX : joe\r\n", queries)
        ident_port = identd.sockets[0].getsockname()[1]
        server = await serve(
            LOOPBACK, 0, handler, None, 5, remote_info=True, ident_port=ident_port, ident_timeout=10
        )
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
            client_port = writer.get_extra_info("sockname")[1]
            await reader.read()
            writer.close()
            await writer.wait_closed()
            return client_port, server.port
        finally:
            await server.close()
            identd.close()
            await identd.wait_closed()

    client_port, server_port = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert queries == [f"{client_port} , {server_port}\r\n".encode()]
    assert seen[0]["TCPREMOTEINFO"] == "joe"


@pytest.mark.live
def test_lookup_refused_or_silent_is_none() -> None:
    async def scenario() -> tuple[str | None, str | None]:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind((LOOPBACK, 0))
            closed = probe.getsockname()[1]
        refused = await ident.lookup((LOOPBACK, 1), (LOOPBACK, 2), 5, port=closed)
        identd = await _fake_identd(b"no newline", [])
        port = identd.sockets[0].getsockname()[1]
        try:
            partial = await ident.lookup((LOOPBACK, 1), (LOOPBACK, 2), 5, port=port)
        finally:
            identd.close()
            await identd.wait_closed()
        return refused, partial

    assert asyncio.run(scenario()) == (None, None)


def _tcp_env_session(
    home: Path, args: list[str], env: dict[str, str], client_ip: str = LOOPBACK
) -> str:
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        with socket.socket() as client:
            client.settimeout(10)
            client.bind((client_ip, 0))
            client.connect(listener.getsockname())
            conn, _ = listener.accept()
            with conn:
                proc = subprocess.run(
                    [sys.executable, "-m", "server", "--home", str(home), "tcp-env", *args],
                    stdin=conn.fileno(),
                    stdout=conn.fileno(),
                    env=env,
                    timeout=30,
                )
            assert proc.returncode == 0
            chunks = []
            while chunk := client.recv(4096):
                chunks.append(chunk)
            local_port = client.getsockname()[1]
    return b"".join(chunks).decode().replace(str(local_port), "CLIENTPORT")


@pytest.fixture
def ptr_home(tmp_path: Path) -> Iterator[Path]:
    yield from ptr_dns_home(tmp_path)


@pytest.mark.live
def test_tcp_env_sets_variables(ptr_home: Path) -> None:
    base = {"PATH": os.environ["PATH"], "TCPREMOTEINFO": "stale"}
    out = _tcp_env_session(ptr_home, ["-R", "sh", "-c", "env | sort"], base)
    lines = out.splitlines()
    assert "PROTO=TCP" in lines and "TCPLOCALIP=127.0.0.1" in lines
    assert "TCPREMOTEIP=127.0.0.1" in lines and "TCPREMOTEPORT=CLIENTPORT" in lines
    # DNS PTR through the home's resolv.conf, lower-cased as case_lowers does.
    assert "TCPLOCALHOST=mail.example.org" in lines
    assert "TCPREMOTEHOST=mail.example.org" in lines
    assert not any(line.startswith("TCPREMOTEINFO=") for line in lines)
    # PROTO=TCP already: tcp-env trusts the environment it was given.
    out = _tcp_env_session(ptr_home, ["sh", "-c", "env | sort"], {**base, "PROTO": "TCP"})
    assert "TCPREMOTEINFO=stale" in out.splitlines()
    assert not any(line.startswith("TCPLOCALIP=") for line in out.splitlines())


@pytest.mark.live
def test_tcp_env_soft_dns_failure(ptr_home: Path) -> None:
    base = {"PATH": os.environ["PATH"]}
    out = _tcp_env_session(ptr_home, ["-R", "sh", "-c", "env | sort"], base, client_ip="127.0.0.2")
    lines = out.splitlines()
    assert "TCPREMOTEIP=127.0.0.2" in lines
    assert "TCPREMOTEHOST=softdnserror" in lines
    assert "TCPLOCALHOST=mail.example.org" in lines
