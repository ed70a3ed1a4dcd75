"""qmail-rspawn: report() folding, RemoteChannel, and the pipe protocol."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from server import spawnpipe
from server.programs import ProgramContext
from server.remote import replies as R
from server.remote.rspawn import RemoteChannel, _serve, report
from server.runtime import virtual_runtime
from server.spawn import DeliveryJob

from .dns.fakes import FakeTransport, zone
from .fakes import FakeConnector
from .test_remote_program import ZONE, make_home


@pytest.mark.parametrize(
    ("output", "folded"),
    [
        (b"r\0K1.2.3.4 accepted message.\nRemote host said: 250 ok\n\0",
         b"K1.2.3.4 accepted message.\nRemote host said: 250 ok\n"),
        (b"h1.2.3.4 does not like recipient.\nRemote host said: 550 no\n\0"
         b"DGiving up on 1.2.3.4.\n\0",
         b"D1.2.3.4 does not like recipient.\nRemote host said: 550 no\n"
         b"Giving up on 1.2.3.4.\n"),
        (b"s1.2.3.4 does not like recipient.\nRemote host said: 451 no\n\0"
         b"DGiving up on 1.2.3.4.\n\0",
         b"Z1.2.3.4 does not like recipient.\nRemote host said: 451 no\n"
         b"Giving up on 1.2.3.4.\n"),
        (b"ZCNAME lookup failed temporarily. (#4.4.3)\n\0",
         b"ZCNAME lookup failed temporarily. (#4.4.3)\n"),
        (b"r\0ZConnected to 1.2.3.4 but connection died. (#4.4.2)\n\0",
         b"ZConnected to 1.2.3.4 but connection died. (#4.4.2)\n"),
        (b"r\0h1.2.3.4 does not like recipient.\n\0DGiving up on 1.2.3.4.\n\0",
         b"D"),  # only the first two reports count: qmail-rspawn serves one recipient
        (b"", b"Zqmail-remote produced no output.\n"),
        (b"Kno nul", b"D"),
    ],
)  # fmt: skip
def test_report(output: bytes, folded: bytes) -> None:
    assert report(output) == folded


def channel(tmp_path: Path, peers: dict[str, object]) -> tuple[RemoteChannel, Path]:
    home = make_home(tmp_path)
    runtime, _ = virtual_runtime()
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
    ch = RemoteChannel(
        ctx,
        dns=FakeTransport(zone(ZONE)),
        connector=FakeConnector(peers),  # type: ignore[arg-type]
        resolvconf=tmp_path / "resolv.conf",
        local_ips=["127.0.0.99"],
    )
    message = tmp_path / "mess"
    message.write_bytes(b"Subject: hi\n\nbody\n")
    return ch, message


def job(message: Path, recipient: str) -> DeliveryJob:
    return DeliveryJob(msgid=1, message=message, sender="a@me.example", recipient=recipient)


def test_channel_delivers(tmp_path: Path) -> None:
    ch, message = channel(tmp_path, {"127.0.2.11": {}})
    assert ch.deliver(job(message, "bob@far.example")) == (
        b"K127.0.2.11 accepted message.\nRemote host said: 250 ok 1700000000 qp 42\n"
    )


def test_channel_recipient_rejected(tmp_path: Path) -> None:
    ch, message = channel(tmp_path, {"127.0.2.11": {"RCPT": b"550 no such user\r\n"}})
    assert ch.deliver(job(message, "bob@far.example")) == (
        b"D127.0.2.11 does not like recipient.\nRemote host said: 550 no such user\n"
        b"Giving up on 127.0.2.11.\n"
    )


def test_channel_errors(tmp_path: Path) -> None:
    ch, message = channel(tmp_path, {})
    assert ch.deliver(job(message, "no-at-sign")) == spawnpipe.NO_HOST.encode()
    assert ch.deliver(job(tmp_path / "missing", "b@far.example")) == spawnpipe.OPEN.encode()
    assert ch.deliver(job(message, "b@far.example")) == R.NOCONN.encode()


def test_channel_crash_is_reported(tmp_path: Path) -> None:
    ch, message = channel(tmp_path, {})

    class Broken:
        def exchange(self, *args: object, **kwargs: object) -> bytes:
            raise RuntimeError("bug")

    ch.dns = Broken()
    assert ch.deliver(job(message, "b@far.example")) == b"Zqmail-remote crashed.\n"


def test_pipe_protocol(tmp_path: Path) -> None:
    ch, message = channel(tmp_path, {"127.0.2.11": {}})
    queue = tmp_path / "queue-mess"
    (queue / "3").mkdir(parents=True)
    message.rename(queue / "3" / "26")
    commands = b"\x033/26\0a@me.example\0bob@far.example\0" + b"\x073/26\0\0nohost\0"
    out = io.BytesIO()
    _serve(ch, io.BytesIO(commands), out, queue)
    replies = sorted(out.getvalue().split(b"\0")[:-1])
    assert replies == sorted(
        [
            b"\x03K127.0.2.11 accepted message.\nRemote host said: 250 ok 1700000000 qp 42\n",
            b"\x07" + spawnpipe.NO_HOST.encode(),
        ]
    )


def test_pipe_protocol_checks_messid(tmp_path: Path) -> None:
    ch, message = channel(tmp_path, {})
    out = io.BytesIO()
    commands = b"\x01/3/26\0s\0r@h\0" + b"\x02\0s\0r@h\0" + b"\x03" + b"1" * 100 + b"\0s\0r@h\0"
    _serve(ch, io.BytesIO(commands), out, message.parent)
    assert sorted(out.getvalue().split(b"\0")[:-1]) == [
        b"\x01" + spawnpipe.MESSID_NONNUMERIC.encode(),
        b"\x02" + spawnpipe.MESSID_SHORT.encode(),
        b"\x03" + spawnpipe.MESSID_LONG.encode(),
    ]
