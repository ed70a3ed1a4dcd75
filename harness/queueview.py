"""Read a qmail queue from disk, the way qmail-qread would see it.

INTERNALS, "Queue structure": ``mess/N`` is the message; ``todo/N`` the
envelope before qmail-send has preprocessed it (``u``/``p``/``F``/``T``
records, each ended by NUL); ``info/N`` holds ``F`` + the sender;
``local/N`` and ``remote/N`` hold one ``T`` (not done) or ``D`` (done) record
per recipient. This module only reads; it never takes qmail-send's place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class QueuedMessage:
    id: int
    sender: str | None = None
    #: recipient → "todo" (not preprocessed yet), "pending" or "done"
    recipients: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # recipient → local|remote


def _records(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    return [r for r in data.split(b"\0") if r]


def _split_files(queue: Path, sub: str) -> dict[int, Path]:
    """``{message number: path}`` under the split directory ``sub``. With
    os.scandir, since an expectation reads some 90 directories of the queue."""
    out: dict[int, Path] = {}
    base = queue / sub
    if not base.is_dir():
        return out
    with os.scandir(base) as entries:
        subdirs = [d.name for d in entries if d.is_dir()]
    for name in subdirs:
        with os.scandir(base / name) as files:
            for f in files:
                if f.name.isdigit():
                    out[int(f.name)] = base / name / f.name
    return out


def read_queue(home: Path) -> list[QueuedMessage]:
    queue = home / "queue"
    messages = {n: QueuedMessage(id=n) for n in _split_files(queue, "mess")}
    todo = queue / "todo"
    for f in todo.iterdir() if todo.is_dir() else []:
        if f.name.isdigit() and int(f.name) in messages:
            msg = messages[int(f.name)]
            for rec in _records(f):
                text = rec[1:].decode("latin-1")
                if rec[:1] == b"F":
                    msg.sender = text
                elif rec[:1] == b"T":
                    msg.recipients[text] = "todo"
    for n, f in _split_files(queue, "info").items():
        if n in messages:
            recs = _records(f)
            if recs and recs[0][:1] == b"F":
                messages[n].sender = recs[0][1:].decode("latin-1")
    for channel in ("local", "remote"):
        for n, f in _split_files(queue, channel).items():
            if n not in messages:
                continue
            for rec in _records(f):
                addr = rec[1:].decode("latin-1")
                messages[n].recipients[addr] = "done" if rec[:1] == b"D" else "pending"
                messages[n].channels[addr] = channel
    return [messages[n] for n in sorted(messages)]
