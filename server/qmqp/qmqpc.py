"""``qmail-qmqpc``: qmail-queue's interface, handed on to a QMQP server (qmail-qmqpc.c).

It reads ``control/qmqpservers`` (missing: exit 55), the message from fd 0
to its end, and the envelope from fd 1 as qmail-queue does (``F``sender NUL,
``T``recipient NUL ..., NUL; anything else: exit 91). Then it tries each
server in turn (a line that is not a dotted quad is skipped) on port 628:
the first that takes the connection gets the whole QMQP request, and the
first ``K``, ``Z`` or ``D`` byte of its answer is the exit code 0, 71 or 31.
A connection refused is 73 and one timed out (10 s) is 72, and the next
server is tried; trouble once connected (60 s to read or write) is 74 at
once. With no server left the last failure is the exit code (55 for none).
In a "mini-qmail" home (FAQ, INSTALL.mini) ``bin/qmail-queue`` is this
program, so everything queued there goes to the hub.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import BinaryIO

from server.control import ControlDir
from server.dns.qmaildns import ip_scan
from server.errors import TempFail
from server.net import Connection, Connector
from server.programs import ProgramContext
from server.qmqp.framing import netstring
from server.queue import codes

PORT_QMQP = 628
CONNECT_TIMEOUT = 10.0  # timeoutconn(..., 10)
IO_TIMEOUT = 60.0  # timeoutread(60, ...) and timeoutwrite(60, ...)


class Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _lines(envelope: bytes) -> list[bytes]:
    """getln(&envelope, ..., '\\0') until the line that ends the envelope."""
    lines: list[bytes] = []
    pos = 0
    while True:
        end = envelope.find(b"\0", pos)
        if end < 0:
            raise Exit(codes.ENVELOPE_FORMAT)  # no match: die_format
        line = envelope[pos : end + 1]
        pos = end + 1
        lines.append(line)
        if len(lines) > 1 and len(line) < 2:
            return lines


def envelope_complete(envelope: bytes) -> bool:
    """Whether ``envelope`` holds the line that ends it (an empty one after the first)."""
    return b"\0" in envelope and b"" in envelope.split(b"\0")[1:-1]


def request(message: bytes, envelope: bytes) -> bytes:
    """getmess(): the QMQP request for ``message`` and a qmail-queue envelope."""
    lines = _lines(envelope)
    first = lines[0]
    if len(first) < 2 or first[:1] != b"F":
        raise Exit(codes.ENVELOPE_FORMAT)
    parts = [netstring(message), netstring(first[1:-1])]
    for line in lines[1:-1]:
        if line[:1] != b"T":
            raise Exit(codes.ENVELOPE_FORMAT)
        parts.append(netstring(line[1:-1]))
    return netstring(b"".join(parts))


def send(servers: list[str], data: bytes, connector: Connector) -> int:
    """doit() for each server; the exit code."""
    last = codes.NO_CONFIG
    for server in servers:
        scanned = ip_scan(server)
        if scanned is None:
            continue
        try:
            conn = connector.connect(scanned[0], PORT_QMQP, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            last = codes.TIMED_OUT
            continue
        except OSError:
            last = codes.CONN_REJECTED
            continue
        try:
            return _answer(conn, data)
        finally:
            conn.close()
    return last


def _answer(conn: Connection, data: bytes) -> int:
    try:
        conn.send(data)
        while True:
            chunk = conn.recv(IO_TIMEOUT)
            if not chunk:
                return codes.COMM_FAILED
            for ch in chunk:
                if ch == 0x4B:  # K
                    return codes.OK
                if ch == 0x5A:  # Z
                    return codes.TEMP_REJECTED
                if ch == 0x44:  # D
                    return codes.PERM_REJECTED
    except OSError:  # TimeoutError included
        return codes.COMM_FAILED


def _envelope(stdout: BinaryIO) -> bytes:
    """Descriptor 1 (qmail-queue's envelope pipe) read up to the line that ends
    the envelope, or to its end."""
    stream = stdout if stdout.readable() else os.fdopen(stdout.fileno(), "rb", closefd=False)
    read = getattr(stream, "read1", stream.read)
    data = b""
    while not envelope_complete(data):
        try:
            chunk: bytes = read(1024)
        except OSError as exc:
            raise Exit(codes.READ_ERROR) from exc
        if not chunk:
            break
        data += chunk
    return data


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
    connector: Connector | None = None,
) -> int:
    try:
        servers = ControlDir(ctx.home / "control").readfile("qmqpservers")
    except TempFail:
        return codes.NO_CONFIG
    if servers is None:
        return codes.NO_CONFIG
    try:
        try:
            message = stdin.read()
        except OSError as exc:
            raise Exit(codes.READ_ERROR) from exc
        data = request(message, _envelope(stdout))
    except Exit as exc:
        return exc.code
    if connector is None:
        from server.remote.connect import SocketConnector

        connector = SocketConnector(IO_TIMEOUT)
    return send(servers, data, connector)
