"""server.cdb: format facts (cdb.3, cdb_hash.c), round trips, and Debian's readers."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import cdb


def test_hash_known_values() -> None:
    # h = 5381 for the empty key; one step is (h*33) ^ c, kept to 32 bits.
    assert cdb.cdb_hash(b"") == 5381
    assert cdb.cdb_hash(b"a") == (5381 * 33) ^ ord("a")
    assert cdb.cdb_hash(b"\xff" * 100) < 2**32


def test_layout_of_one_record() -> None:
    data = cdb.build([(b"k", b"vv")])
    h = cdb.cdb_hash(b"k")
    # The record follows the 2048-byte header: keylen, datalen, key, data.
    assert data[2048:2059] == struct.pack("<II", 1, 2) + b"kvv"
    pos, slots = struct.unpack_from("<II", data, 8 * (h & 255))
    assert (pos, slots) == (2059, 2)
    # Empty tables point at where tables begin (cdbmake_throw) with 0 slots.
    assert struct.unpack_from("<II", data, 8 * ((h + 1) & 255)) in {(2059, 0), (2059 + 16, 0)}
    assert len(data) == 2059 + 16


def test_empty_database() -> None:
    data = cdb.build([])
    assert len(data) == 2048
    reader = cdb.Reader(data)
    assert reader.get(b"x") is None
    assert list(reader.items()) == []


def test_duplicates_in_insertion_order() -> None:
    reader = cdb.Reader(cdb.build([(b"a", b"1"), (b"b", b"x"), (b"a", b"2")]))
    assert reader.get(b"a") == b"1"
    assert reader.get_all(b"a") == [b"1", b"2"]
    assert list(reader.items()) == [(b"a", b"1"), (b"b", b"x"), (b"a", b"2")]
    assert b"b" in reader
    assert b"c" not in reader


def test_truncated_file_is_an_error() -> None:
    with pytest.raises(cdb.CdbError):
        cdb.Reader(b"\0" * 100)
    data = cdb.build([(b"key", b"value")])
    with pytest.raises(cdb.CdbError):
        cdb.Reader(data[:2050]).get(b"key")


def test_atomic_write_leaves_no_tmp(tmp_path: Path) -> None:
    target = tmp_path / "x.cdb"
    with cdb.Writer(target) as w:
        w.add(b"one", b"1")
    assert cdb.get(target, b"one") == b"1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.cdb"]


def test_writer_keeps_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "x.cdb"
    cdb.write(target, [(b"old", b"1")])
    with pytest.raises(RuntimeError), cdb.Writer(target) as w:
        w.add(b"new", b"2")
        raise RuntimeError("boom")
    assert cdb.get(target, b"old") == b"1"


_dicts = st.dictionaries(st.binary(max_size=20), st.binary(max_size=40), max_size=60)


@given(_dicts)
def test_round_trip(d: dict[bytes, bytes]) -> None:
    reader = cdb.Reader(cdb.build(d.items()))
    for key, value in d.items():
        assert reader.get(key) == value
    assert dict(reader.items()) == d


@given(_dicts, st.binary(max_size=20))
def test_absent_keys(d: dict[bytes, bytes], probe: bytes) -> None:
    reader = cdb.Reader(cdb.build(d.items()))
    assert reader.get(probe) == d.get(probe)


def _cdbmake_input(d: dict[bytes, bytes]) -> bytes:
    out = b"".join(b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v) for k, v in d.items())
    return out + b"\n"


@pytest.mark.external
@settings(max_examples=25, deadline=None)
@given(_dicts)
def test_debian_cdbdump_reads_ours(
    tmp_path_factory: pytest.TempPathFactory, d: dict[bytes, bytes]
) -> None:
    if shutil.which("cdbdump") is None:
        pytest.skip("cdbdump not installed (Debian package freecdb)")
    path = tmp_path_factory.mktemp("cdb") / "t.cdb"
    cdb.write(path, d.items())
    with path.open("rb") as f:
        dumped = subprocess.run(["cdbdump"], stdin=f, capture_output=True, check=True).stdout
    assert dumped == _cdbmake_input(d)


@pytest.mark.external
def test_debian_cdbget_and_tinycdb(tmp_path: Path) -> None:
    if shutil.which("cdbget") is None:
        pytest.skip("cdbget not installed (Debian package freecdb)")
    path = tmp_path / "t.cdb"
    cdb.write(path, [(b"alpha", b"1"), (b"beta", b"2"), (b"alpha", b"3")])
    with path.open("rb") as f:
        got = subprocess.run(["cdbget", "alpha"], stdin=f, capture_output=True, check=True)
    assert got.stdout == b"1"
    if shutil.which("cdb") is not None:  # tinycdb: -q KEY, -n N for the Nth value
        got = subprocess.run(["cdb", "-q", "-n", "2", str(path), "alpha"], capture_output=True)
        assert got.stdout == b"3"


@pytest.mark.external
def test_ours_reads_debian_cdbmake(tmp_path: Path) -> None:
    if shutil.which("cdbmake") is None:
        pytest.skip("cdbmake not installed (Debian package freecdb)")
    d = {b"x": b"1", b"": b"empty", b"long" * 30: b"v" * 300}
    path = tmp_path / "t.cdb"
    subprocess.run(
        ["cdbmake", str(path), str(tmp_path / "t.tmp")], input=_cdbmake_input(d), check=True
    )
    # Same records, same order: the bytes are identical to ours.
    assert path.read_bytes() == cdb.build(d.items())
    assert dict(cdb.Reader.open(path).items()) == d
