"""RFC 1413 ident lookups: what becomes TCPREMOTEINFO (remoteinfo.c).

tcpserver ``-r`` and tcp-env ``-r`` ask the client's identd who owns the
connection: connect from the local address to the remote host's port 113,
send ``REMOTEPORT , LOCALPORT\\r\\n``, and read one line. The answer is
everything after its third colon, with spaces, tabs and CRs dropped
(``6191, 23 : USERID : UNIX : joe`` gives ``joe``), cut at a length limit:
998 bytes in qmail's remoteinfo.c (tcp-env), 257 in ucspi-tcp's (tcpserver).
Any failure — refused, timed out, closed before a newline — means no
TCPREMOTEINFO at all.
"""

from __future__ import annotations

import asyncio
import contextlib

IDENT_PORT = 113
#: qmail's remoteinfo.c: a 999-byte line buffer, one byte kept for the NUL.
MAX_INFO = 998
#: ucspi-tcp's remoteinfo.c stops once it holds more than 256 bytes.
UCSPI_MAX_INFO = 257


def query(remote_port: int, local_port: int) -> bytes:
    return f"{remote_port} , {local_port}\r\n".encode()


def parse_reply(data: bytes, limit: int = MAX_INFO) -> str | None:
    """The info from an ident reply, or None when no full line arrived."""
    out = bytearray()
    colons = 0
    for ch in data:
        if ch in b" \t\r":
            continue
        if ch == ord("\n"):
            return out.decode("latin-1")
        if colons < 3:
            colons += ch == ord(":")
        else:
            out.append(ch)
            if len(out) >= limit:
                return out.decode("latin-1")
    return None


async def lookup(
    remote: tuple[str, int],
    local: tuple[str, int],
    timeout: float,
    *,
    port: int = IDENT_PORT,
    limit: int = MAX_INFO,
) -> str | None:
    """Ask ``remote``'s identd about the connection; None on any failure."""

    async def ask() -> str | None:
        reader, writer = await asyncio.open_connection(remote[0], port, local_addr=(local[0], 0))
        try:
            writer.write(query(remote[1], local[1]))
            await writer.drain()
            data = bytearray()
            while (reply := parse_reply(bytes(data), limit)) is None:
                chunk = await reader.read(256)
                if not chunk:
                    return None
                data += chunk
            return reply
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        return await asyncio.wait_for(ask(), timeout)
    except (TimeoutError, OSError):
        return None
