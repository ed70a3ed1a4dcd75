"""server.filecache: a file is read again whenever it has changed, never kept
while it is young enough for a change to hide in one tick of the file clock."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from server import filecache


class Reads:
    """Counts filecache's reads of the file itself; moves its clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.offset_ns = 0
        real_read = filecache._read

        def read(path: str) -> bytes:
            self.count += 1
            return real_read(path)

        monkeypatch.setattr(filecache, "_read", read)
        monkeypatch.setattr(filecache, "_now_ns", lambda: self.now_ns())
        monkeypatch.setattr(filecache, "_kept", {})

    @staticmethod
    def real_now_ns() -> int:
        return time.time_ns()

    def now_ns(self) -> int:
        return self.real_now_ns() + self.offset_ns

    def age(self) -> None:
        """As if RACY seconds and more had passed since every change so far."""
        self.offset_ns += int(filecache.RACY * 1e9) + 1_000_000_000


def rewrite_in_place(path: Path, data: bytes) -> None:
    """Write ``data`` over ``path``'s content, its modification time put back:
    only the change time tells."""
    before = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_an_old_file_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = Reads(monkeypatch)
    path = tmp_path / "rcpthosts"
    path.write_bytes(b"example.org\n")
    reads.age()
    assert [filecache.read_bytes(str(path)) for _ in range(3)] == [b"example.org\n"] * 3
    assert reads.count == 1


def test_a_young_file_is_read_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = Reads(monkeypatch)
    path = tmp_path / "me"
    path.write_bytes(b"a.example\n")
    for _ in range(3):
        assert filecache.read_bytes(str(path)) == b"a.example\n"
    assert reads.count == 3


def replace_by_rename(path: Path, data: bytes) -> None:
    """tcprules' way: a new file renamed over the old one."""
    new = path.with_suffix(".tmp")
    new.write_bytes(data)
    new.rename(path)


@pytest.mark.parametrize("change", [rewrite_in_place, replace_by_rename])
def test_a_change_to_a_kept_file_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[Path, bytes], None]
) -> None:
    reads = Reads(monkeypatch)
    path = tmp_path / "databytes"
    path.write_bytes(b"1000\n")
    reads.age()
    assert filecache.read_bytes(str(path)) == b"1000\n"
    change(path, b"2000\n")  # the same size
    assert filecache.read_bytes(str(path)) == b"2000\n"


def test_a_missing_file_is_an_error_until_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Reads(monkeypatch)
    path = tmp_path / "badmailfrom"
    with pytest.raises(FileNotFoundError):
        filecache.read_bytes(str(path))
    path.write_bytes(b"@spam.example\n")
    assert filecache.read_bytes(str(path)) == b"@spam.example\n"
    path.unlink()
    with pytest.raises(FileNotFoundError):
        filecache.read_bytes(str(path))


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.binary(max_size=8)),
        st.tuples(st.just("replace"), st.binary(max_size=8)),
        st.tuples(st.just("age"), st.just(b"")),
        st.tuples(st.just("read"), st.just(b"")),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_what_is_read_is_what_the_file_holds(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, bytes]]
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        reads = Reads(monkeypatch)
        where = tmp_path_factory.mktemp("filecache")
        path = where / "control"
        path.write_bytes(b"first")
        aged: set[int] = set()  # change times that have "aged"
        for op, data in ops:
            if op == "write":
                rewrite_in_place(path, data)
            elif op == "replace":
                replace_by_rename(path, data)
            elif op == "age":
                reads.age()
                aged.add(path.stat().st_ctime_ns)
            # really aging takes RACY seconds, after which no change can share
            # the kernel's clock tick with one before; the fake age cannot
            assume(op == "age" or path.stat().st_ctime_ns not in aged)
            assert filecache.read_bytes(str(path)) == path.read_bytes()
