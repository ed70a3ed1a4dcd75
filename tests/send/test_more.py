"""More qmail-send behaviour: corrupt channel files, the date-localtime patch,
and the pipe-protocol parsers fed whole, byte by byte and with trailing bytes."""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from server.qdir import qfn
from server.runtime import FileOps, StrPath
from server.send.core import QmailSend
from server.send.pipes import ReportSplitter

from .simkit import Sim


def test_unknown_record_in_a_channel_file(sim: Sim) -> None:
    sim.remote.script = lambda job: b"Zlater\n"
    send = sim.start()
    msgid = sim.queue("a@mx.example.org", ["b@far.example"])
    send.run_due()
    remote = qfn(sim.home / "queue", "remote", msgid)
    remote.write_bytes(b"Xjunk\0Tb@far.example\0")
    send.alarm()
    send.run_due()
    assert f"warning: unknown record type in remote/{msgid % 23}/{msgid}!" in sim.lines
    # the message is kept and tried again at its retry time, never lost
    assert remote.exists() and qfn(sim.home / "queue", "mess", msgid).exists()
    assert send.next_wakeup() is not None


def test_bounce_date_with_the_date_localtime_patch(sim: Sim) -> None:
    sim.ctx = dataclasses.replace(sim.ctx, patches=frozenset({"date-localtime"}))
    sim.local.script = lambda job: b"Dgone\n" if job.recipient.startswith("x@") else b"Kok\n"
    send = QmailSend(
        sim.ctx,
        {"local": sim.local, "remote": sim.remote},
        sim.lines.append,
        env={"TZ": "Europe/Berlin"},
    )
    sim.queue("a@mx.example.org", ["x@mx.example.org"])
    send.run_due()
    bounce = sim.local.texts[1]
    assert b"\nDate: 14 Nov 2023 23:13:20 +0100\n" in bounce


REPORTS = st.lists(
    st.tuples(st.integers(0, 255), st.binary(min_size=1).map(lambda b: b.replace(b"\0", b"."))),
    max_size=5,
)


def _wire(reports: list[tuple[int, bytes]]) -> bytes:
    return b"".join(bytes([n]) + text + b"\0" for n, text in reports)


@given(REPORTS, st.binary(max_size=8).map(lambda b: b.replace(b"\0", b"")))
def test_report_splitter_whole_bytewise_and_trailing(
    reports: list[tuple[int, bytes]], tail: bytes
) -> None:
    wire = _wire(reports)
    assert ReportSplitter().feed(wire) == reports
    bytewise = ReportSplitter()
    got = [r for i in range(len(wire)) for r in bytewise.feed(wire[i : i + 1])]
    assert got == reports
    # an unfinished report waits; nothing else comes out of it
    trailing = ReportSplitter()
    assert trailing.feed(wire + tail) == reports


def _splitter_bytewise(data: bytes, limit: int) -> list[tuple[int, bytes]]:
    """del_dochan's loop as qmail-send.c writes it, one byte at a time."""
    line = bytearray()
    done = []
    for byte in data:
        if byte == 0 and len(line) > 1:
            done.append((line[0], bytes(line[1:])))
            line.clear()
        elif len(line) < limit:
            line.append(byte)
    return done


@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=20), st.integers(2, 40))
def test_report_splitter_is_del_dochans_byte_loop(wire: bytes, cuts: list[int], limit: int) -> None:
    """Any bytes, in any chunks, with NULs anywhere (after the number too) and
    lines past REPORTMAX: the same reports as del_dochan's byte-at-a-time loop."""
    splitter = ReportSplitter(limit=limit)  # a small limit, for short examples
    got: list[tuple[int, bytes]] = []
    pos = 0
    for cut in [*cuts, len(wire)]:
        got += splitter.feed(wire[pos : pos + cut])
        pos += cut
    assert got == _splitter_bytewise(wire, limit)


class FullDisk(FileOps):
    full = True

    def write(self, fd: int, data: bytes) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write(fd, data)


class FailingFsync(FileOps):
    """fsync fails (EIO) for files in ``where``; every other step is real."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fsync_open_in_order(self, *files: tuple[int, StrPath], hinted: bool = False) -> None:
        for _fd, path in files:
            if self.where in Path(path).parts:
                raise OSError(errno.EIO, "Input/output error", os.fspath(path))


def test_a_failed_fsync_while_preprocessing_is_trouble_fsyncing_that_file(sim: Sim) -> None:
    send = sim.start()
    sim.ctx.runtime.fsync = True  # the simulator leaves fsync out; here it fails
    msgid = sim.queue("a@mx.example.org", ["b@mx.example.org"])
    sim.ctx.runtime.fileops = FailingFsync("local")
    send.run_due()
    assert f"warning: trouble fsyncing local/{msgid % 23}/{msgid}" in sim.lines
    assert not sim.local.seen
    assert qfn(sim.home / "queue", "todo", msgid).exists()  # kept for the next scan


def test_full_disk_while_preprocessing_keeps_the_message(sim: Sim) -> None:
    send = sim.start()
    msgid = sim.queue("a@mx.example.org", ["b@mx.example.org"])
    disk = FullDisk()
    sim.ctx.runtime.fileops = disk
    send.run_due()
    assert f"warning: trouble writing to info/{msgid % 23}/{msgid}" in sim.lines
    assert not sim.local.seen
    assert qfn(sim.home / "queue", "todo", msgid).exists()
    disk.full = False
    send.run_due()
    assert not sim.local.seen  # no new trigger: todo/ waits for the next scan
    sim.advance(1500 + 1)  # SLEEP_TODO, and qmail's second of fuzz
    assert [j.recipient for j in sim.local.seen] == ["b@mx.example.org"]
    assert sim.lines.count(f"new msg {msgid}") == 2
    assert sim.lines[-1] == f"end msg {msgid}"


def test_spawn_pipe_matches_reports_to_deliveries_out_of_order() -> None:
    """SpawnPipe over real pipes to a fake spawn program that answers in reverse."""
    import os
    import threading
    from functools import partial

    from server.send.pipes import SpawnPipe
    from server.spawn import DeliveryJob

    to_spawn_r, to_spawn_w = os.pipe()
    from_spawn_r, from_spawn_w = os.pipe()
    commands: list[bytes] = []

    def fake_spawn() -> None:
        os.write(from_spawn_w, bytes([2]))  # concurrency limit 2
        data = b""
        parsed: list[list[bytes]] = []
        while len(parsed) < 2:
            data += os.read(to_spawn_r, 4096)
            # one byte of delivery number (maybe 0), then three NUL-ended fields
            while len(data) > 1 and data[1:].count(b"\0") >= 3:
                fields = data[1:].split(b"\0", 3)
                parsed.append([data[:1], *fields[:3]])
                data = fields[3]
        commands.extend(c[1] for c in parsed)
        for cmd in reversed(parsed):  # answer the second delivery first
            os.write(from_spawn_w, cmd[0] + b"Kdone " + cmd[3] + b"\n\0")

    spawn = threading.Thread(target=fake_spawn)
    spawn.start()
    pipe = SpawnPipe(to_spawn_w, from_spawn_r)
    assert pipe.limit == 2
    results: dict[str, bytes] = {}
    for rcpt in ("a@x", "b@x"):
        job = DeliveryJob(msgid=50, message=Path("/q/mess/4/50"), sender="s@x", recipient=rcpt)
        pipe.begin(job, partial(results.__setitem__, rcpt))
    while len(results) < 2:  # as qmail-send's loop, when the descriptor is readable
        pipe.readable()
    spawn.join(10)
    assert results == {"a@x": b"Kdone a@x\n", "b@x": b"Kdone b@x\n"}
    assert commands == [b"4/50", b"4/50"]
    for fd in (to_spawn_r, to_spawn_w, from_spawn_w, from_spawn_r):
        os.close(fd)
