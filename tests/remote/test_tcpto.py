"""lock/tcpto rules (tcpto.c), qmail-tcpto's listing, qmail-tcpok, tcpto_clean."""

from __future__ import annotations

import io
from pathlib import Path

from server.programs import ProgramContext
from server.remote import tcpok, tcpto
from server.remote.tcpto import RECORD, SIZE, Tcpto, clean, listing
from server.runtime import VirtualClock, virtual_runtime

T0 = 1_700_000_000


def make(tmp_path: Path, pid: int = 0) -> tuple[Tcpto, VirtualClock, Path]:
    path = tmp_path / "tcpto"
    path.write_bytes(b"\0" * SIZE)
    clock = VirtualClock(T0)
    return Tcpto(path, lambda: int(clock.now()), pid), clock, path


def record(path: Path, slot: int) -> bytes:
    return path.read_bytes()[slot * RECORD : (slot + 1) * RECORD]


def test_first_timeout_takes_free_slot(tmp_path: Path) -> None:
    t, _, path = make(tmp_path)
    assert not t.timed_out("10.0.0.1")
    t.error("10.0.0.1", True)
    rec = record(path, 0)
    assert rec[:4] == bytes([10, 0, 0, 1]) and rec[4] == 1
    assert int.from_bytes(rec[8:12], "little") == T0


def test_skip_after_two_timeouts_for_about_an_hour(tmp_path: Path) -> None:
    t, clock, _ = make(tmp_path, pid=5)
    t.error("10.0.0.1", True)
    clock.advance(60)
    t.error("10.0.0.1", True)  # within 120 s: not counted
    assert not t.timed_out("10.0.0.1")
    clock.advance(61)
    t.error("10.0.0.1", True)
    assert t.timed_out("10.0.0.1")
    # (60 + (pid & 31)) << 6 = 65 * 64 = 4160 s
    clock.advance(4159)
    assert t.timed_out("10.0.0.1")
    clock.advance(1)
    assert not t.timed_out("10.0.0.1")


def test_success_resets_only_when_seen(tmp_path: Path) -> None:
    t, clock, path = make(tmp_path)
    t.error("10.0.0.1", True)
    clock.advance(200)
    t.error("10.0.0.1", True)
    t.error("10.0.0.1", False)  # no tcpto() check before: flagwasthere is 0
    assert record(path, 0)[4] == 2
    assert t.timed_out("10.0.0.1")
    t.error("10.0.0.1", False)
    assert record(path, 0)[4] == 0


def test_full_table_replaces_oldest(tmp_path: Path) -> None:
    t, clock, path = make(tmp_path)
    for i in range(SIZE // RECORD):
        t.error(f"10.0.1.{i}", True)
        clock.advance(1)
    t.error("10.0.2.1", True)
    assert record(path, 0)[:4] == bytes([10, 0, 2, 1])


def test_count_caps_at_ten(tmp_path: Path) -> None:
    t, clock, path = make(tmp_path)
    for _ in range(15):
        t.error("10.0.0.1", True)
        clock.advance(121)
    assert record(path, 0)[4] == 10


def test_missing_file_is_harmless(tmp_path: Path) -> None:
    t = Tcpto(tmp_path / "nope", lambda: T0, 1)
    assert not t.timed_out("10.0.0.1")
    t.error("10.0.0.1", True)


def test_listing_and_clean(tmp_path: Path) -> None:
    t, _clock, path = make(tmp_path)
    t.error("10.0.0.1", True)
    assert listing(path.read_bytes(), T0 + 30) == (
        b"10.0.0.1 timed out 30 seconds ago; # recent timeouts: 1\n"
    )
    clean(path)
    assert path.read_bytes() == b"\0" * SIZE


def _ctx(home: Path) -> ProgramContext:
    runtime, _clock = virtual_runtime(start=T0 + 5)
    return ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())


def test_programs(tmp_path: Path) -> None:
    lock = tmp_path / "queue" / "lock"
    lock.mkdir(parents=True)
    t = Tcpto(lock / "tcpto", lambda: T0, 1)
    (lock / "tcpto").write_bytes(b"\0" * SIZE)
    t.error("127.0.0.5", True)
    out = io.BytesIO()
    ctx = _ctx(tmp_path)
    assert tcpto.main(["qmail-tcpto"], {}, io.BytesIO(), out, ctx) == 0
    assert out.getvalue() == b"127.0.0.5 timed out 5 seconds ago; # recent timeouts: 1\n"
    assert tcpok.main(["qmail-tcpok"], {}, io.BytesIO(), io.BytesIO(), ctx) == 0
    assert (lock / "tcpto").read_bytes() == b"\0" * SIZE


def test_program_errors(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    out = io.BytesIO()
    assert tcpto.main(["qmail-tcpto"], {}, io.BytesIO(), out, ctx) == 111
    assert out.getvalue() == b"fatal: unable to chdir: file does not exist\n"
    (tmp_path / "queue" / "lock").mkdir(parents=True)
    assert tcpok.main(["qmail-tcpok"], {}, io.BytesIO(), io.BytesIO(), ctx) == 111
    assert isinstance(ctx.stderr, io.BytesIO)
    assert ctx.stderr.getvalue() == (
        f"qmail-tcpok: fatal: unable to write {tmp_path}/queue/lock/tcpto: "
        "file does not exist\n".encode()
    )
