"""The pipe between a live/reference target and its agent process.

Frames are a 4-byte big-endian length and a pickle. Requests are
:class:`Request` (a verb and keyword arguments); every request gets exactly
one reply frame: ``("ok", value)`` or ``("error", message)``. Pickle is safe
here: both ends are this package, started by the same user, over a private
pipe.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.scenario.model import Scenario

HEADER = struct.Struct("!I")


@dataclass(frozen=True, kw_only=True)
class Setup:
    """What the agent needs to build a scenario's world."""

    mode: str  # "live": our programs in the agent; "qmail": a real home's bin/
    home: Path
    workdir: Path
    scenario: Scenario
    offset_path: Path
    netns: bool
    rules_cdb: Path | None = None
    client_ips: tuple[str, ...] = ()
    #: qmail mode: the environment the reference home's programs get
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Request:
    verb: str
    args: dict[str, Any] = field(default_factory=dict)


def write_frame(out: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(data)) + data)
    out.flush()


def read_frame(src: IO[bytes]) -> object:
    """The next frame; EOFError when the other end has gone."""
    head = _exactly(src, HEADER.size)
    (size,) = HEADER.unpack(head)
    return pickle.loads(_exactly(src, size))


def _exactly(src: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = src.read(size - len(data))
        if not chunk:
            raise EOFError("the other end closed the pipe")
        data += chunk
    return data


__all__ = ["Request", "Setup", "read_frame", "write_frame"]
