"""More qmail-send behaviour: corrupt channel files, the date-localtime patch,
and the pipe-protocol parsers fed whole, byte by byte and with trailing bytes."""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from server.qdir import qfn
from server.runtime import FileOps
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


class FullDisk(FileOps):
    full = True

    def append(self, path: Path, data: bytes, *, fsync: bool = True) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().append(path, data, fsync=fsync)


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
