"""D. J. Bernstein's constant database (cdb) format: a writer and a reader.

qmail uses cdb for ``control/morercpthosts.cdb`` (qmail-newmrh) and
``users/cdb`` (qmail-newu); ucspi-tcp's tcprules compiles its rules into one.
The file format (cdb.3, cdb_hash.c, cdb_seek.c, cdbmss.c in netqmail-1.06):

* a 2048-byte header: 256 pairs ``(position, slots)`` of one hash table each,
  every number a 32-bit little-endian unsigned integer;
* the records, in the order they were added: ``keylen, datalen, key, data``;
* the 256 hash tables. A table with *n* records has ``2n`` slots of
  ``(hash, record position)``; an empty slot has position 0.

The hash is ``h = 5381; h = ((h << 5) + h) ^ c`` per byte, kept to 32 bits.
Table ``h & 255`` holds the key; the search starts at slot ``(h >> 8) % slots``
and probes linearly, wrapping, until an empty slot. A key may be stored more
than once; :meth:`Reader.get_all` returns every value in insertion order.

The writer is atomic like qmail-newu and tcprules: it writes a temporary file,
fsyncs it and renames it over the target, so readers see the old file or the
new one, never half of one.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from server import filecache
from server.fdwrite import write_synced

HEADER_SIZE = 2048
_PAIR = struct.Struct("<II")
_MAX = 0xFFFFFFFF


class CdbError(Exception):
    """The file is not a well-formed cdb (truncated, or positions past its end)."""


def cdb_hash(key: bytes) -> int:
    """cdb_hash.c: ``h = ((h << 5) + h) ^ c``, starting at 5381, modulo 2**32."""
    h = 5381
    for c in key:
        h = (((h << 5) + h) & _MAX) ^ c
    return h


def build(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The bytes of a cdb holding ``items`` (duplicates kept, in order)."""
    records = bytearray()
    buckets: list[list[tuple[int, int]]] = [[] for _ in range(256)]
    for key, data in items:
        pos = HEADER_SIZE + len(records)
        records += _PAIR.pack(len(key), len(data))
        records += key
        records += data
        h = cdb_hash(key)
        buckets[h & 255].append((h, pos))
    tables_start = HEADER_SIZE + len(records)
    if tables_start + 16 * sum(len(b) for b in buckets) > _MAX:
        raise CdbError("cdb would exceed 4 GB")
    header = bytearray()
    tables = bytearray()
    for bucket in buckets:
        slots = 2 * len(bucket)
        header += _PAIR.pack(tables_start + len(tables), slots)
        table = [(0, 0)] * slots
        for h, pos in bucket:
            i = (h >> 8) % slots
            while table[i][1] != 0:
                i = (i + 1) % slots
            table[i] = (h, pos)
        for h, pos in table:
            tables += _PAIR.pack(h, pos)
    return bytes(header + records + tables)


def write(path: Path, items: Iterable[tuple[bytes, bytes]], tmp: Path | None = None) -> None:
    """Write a cdb atomically: ``tmp`` (default ``path.tmp``), fsync, rename."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(path.name + ".tmp")
    write_synced(tmp, build(items))
    os.rename(tmp, path)


class Writer:
    """Collects records, then :func:`write` on a clean exit of the ``with`` block."""

    def __init__(self, path: Path, tmp: Path | None = None) -> None:
        self.path = Path(path)
        self.tmp = tmp
        self._items: list[tuple[bytes, bytes]] = []

    def add(self, key: bytes, data: bytes) -> None:
        self._items.append((bytes(key), bytes(data)))

    def finish(self) -> None:
        write(self.path, self._items, self.tmp)

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()


class Reader:
    """Looks keys up in the bytes of a cdb (read whole: our files are small)."""

    def __init__(self, data: bytes) -> None:
        if len(data) < HEADER_SIZE:
            raise CdbError("cdb shorter than its 2048-byte header")
        self.data = data

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Reader:
        """Read ``path`` (again only once it has changed: server.filecache);
        OSError (e.g. FileNotFoundError) passes through."""
        return cls(filecache.read_bytes(os.fspath(path)))

    def _pair(self, pos: int) -> tuple[int, int]:
        if pos + 8 > len(self.data):
            raise CdbError(f"cdb truncated at {pos}")
        a, b = _PAIR.unpack_from(self.data, pos)
        return int(a), int(b)

    def _record(self, pos: int) -> tuple[bytes, bytes]:
        klen, dlen = self._pair(pos)
        start = pos + 8
        if start + klen + dlen > len(self.data):
            raise CdbError(f"cdb record at {pos} runs past the end")
        return (
            self.data[start : start + klen],
            self.data[start + klen : start + klen + dlen],
        )

    def iter_values(self, key: bytes) -> Iterator[bytes]:
        """Every value stored under ``key``, in the order they were added."""
        h = cdb_hash(key)
        table, slots = self._pair(8 * (h & 255))
        if not slots:
            return
        i = (h >> 8) % slots
        for _ in range(slots):
            slot_hash, pos = self._pair(table + 8 * i)
            if pos == 0:
                return
            if slot_hash == h:
                rkey, rdata = self._record(pos)
                if rkey == key:
                    yield rdata
            i = (i + 1) % slots

    def get(self, key: bytes) -> bytes | None:
        """The first value for ``key`` (what cdb_seek finds), or None."""
        return next(self.iter_values(key), None)

    def get_all(self, key: bytes) -> list[bytes]:
        return list(self.iter_values(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.get(key) is not None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every record in file order, as cdbdump prints them."""
        end = min(self._pair(8 * i)[0] for i in range(256))
        pos = HEADER_SIZE
        while pos < end:
            key, data = self._record(pos)
            yield key, data
            pos += 8 + len(key) + len(data)


def get(path: Path, key: bytes) -> bytes | None:
    """One lookup in the cdb at ``path``; FileNotFoundError if it is missing."""
    return Reader.open(path).get(key)
