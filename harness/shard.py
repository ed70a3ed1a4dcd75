"""Sharding a suite over CI machines: ``run --shard K/N``, pytest ``--qmail-shard K/N``.

A scenario goes to shard ``1 + crc32(id) mod N``, where the id is its file
(as named relative to the suite) and name. CRC-32 (zlib) is the same on every
machine and every Python, unlike the built-in hash(), which is salted per
process; so N machines given 1/N..N/N run every scenario exactly once, and no
machine needs to know what the others run.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from harness.report import relative_file

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as CI matrices count
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"

    def holds(self, key: str) -> bool:
        """Whether the item named ``key`` belongs to this shard."""
        return zlib.crc32(key.encode("utf-8")) % self.total == self.index - 1

    def pick(self, items: Iterable[T], key: Callable[[T], str]) -> list[T]:
        return [item for item in items if self.holds(key(item))]


def parse_shard(text: str) -> Shard:
    """``K/N`` with 1 <= K <= N; ValueError otherwise."""
    index, sep, total = text.partition("/")
    if not sep or not index.strip().isdigit() or not total.strip().isdigit():
        raise ValueError(f"{text!r} is not K/N (e.g. 1/3)")
    shard = Shard(int(index), int(total))
    if not 1 <= shard.index <= shard.total:
        raise ValueError(f"shard {text!r}: K must be between 1 and N")
    return shard


def scenario_key(file: str, name: str) -> str:
    """A scenario's id for sharding: an absolute file is made relative to the
    current directory (a checkout's place differs between machines)."""
    return f"{relative_file(file)}::{name}"


__all__ = ["Shard", "parse_shard", "scenario_key"]
