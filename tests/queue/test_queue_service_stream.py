"""The queue service's streamed requests (server.queue.service): frames in, mess/N as they come.

Needs root and qmail's users, as tests/queue/test_queue_service.py: the
service runs as qmailq in a forked child; the caller here is root.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from server import privsep
from server.queue import codes
from server.queue.envelope import encode_envelope
from server.queue.service import MAX_FRAME, ServiceStream
from tests.queue.service_fixtures import files, public_dir, service, split
from tests.splithome import SplitHome

__all__ = ["public_dir", "service", "split"]  # fixtures, used by name

ENVELOPE = encode_envelope("a@example.org", ["b@example.org"])
LENGTH = struct.Struct(">Q")


def test_a_message_in_pieces_is_queued_whole(split: SplitHome, service: Path) -> None:
    pieces = [b"Subject: big\n\n", b"x" * (MAX_FRAME + 10) + b"\n", b"", b"end\n"]
    stream = ServiceStream(service)
    for piece in pieces:
        stream.put(piece)
    code, qp = stream.close(ENVELOPE)
    assert code == codes.OK and qp > 0
    [mess] = files(split, "mess")
    received, rest = mess.read_bytes().split(b"\n", 1)
    assert received.startswith(b"Received: (qmail %d invoked by uid 0); " % qp)
    assert rest == b"".join(pieces)
    [todo] = files(split, "todo")
    assert todo.read_bytes().endswith(b"Fa@example.org\0Tb@example.org\0")


def _raw_request(service: Path, data: bytes) -> tuple[int, int]:
    """Send ``data`` as it is, end the request there, read the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(os.fspath(service))
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        answer = bytearray()
        while chunk := conn.recv(4096):
            answer += chunk
    code, qp = privsep.unpack_fields(bytes(answer))
    return int(code), int(qp)


@pytest.mark.parametrize(
    "request_",
    [
        LENGTH.pack(5) + b"hello",  # the message never ends
        LENGTH.pack(5) + b"hel",  # cut inside a frame
        LENGTH.pack(5) + b"hello" + LENGTH.pack(0),  # no envelope
        LENGTH.pack(5) + b"hello" + LENGTH.pack(0) + LENGTH.pack(len(ENVELOPE)) + ENVELOPE,
    ],
    ids=["no-end", "cut-frame", "no-envelope", "envelope-unended"],
)
def test_a_request_cut_off_is_a_read_error_and_leaves_nothing(
    split: SplitHome, service: Path, request_: bytes
) -> None:
    code, _qp = _raw_request(service, request_)
    assert code == codes.READ_ERROR  # qmail-queue reading end of file: 54
    for sub in ("pid", "mess", "intd", "todo"):
        assert files(split, sub) == [], sub


def test_a_frame_too_long_ends_the_run(split: SplitHome, service: Path) -> None:
    request_ = LENGTH.pack(5) + b"hello" + LENGTH.pack(MAX_FRAME + 1) + b"x"
    try:
        code: int | None = _raw_request(service, request_)[0]
    except ConnectionResetError:  # it hung up with "x" unread: the caller's 111
        code = None
    assert code in (codes.READ_ERROR, None)
    for sub in ("pid", "mess", "intd", "todo"):  # cleaned up before it answered or hung up
        assert files(split, sub) == [], sub
