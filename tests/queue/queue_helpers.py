"""Shared helpers for the queue tests: what the queue holds, and faulty FileOps."""

from __future__ import annotations

import errno
import io
from pathlib import Path

from server.programs import ProgramContext
from server.runtime import Crash, FileOps, StrPath, virtual_runtime

QUEUE_DIRS = ("pid", "mess", "intd", "todo", "info", "local", "remote", "bounce")


def queue_files(queue: Path) -> dict[str, list[Path]]:
    """Files per queue directory (split directories flattened); empty ones left out."""
    found: dict[str, list[Path]] = {}
    for sub in QUEUE_DIRS:
        files = sorted(p for p in (queue / sub).rglob("*") if p.is_file())
        if files:
            found[sub] = files
    return found


class FaultyFileOps(FileOps):
    """Does the real step, except the ``at``-th durable step (1-based) fails.

    ``crash=True`` raises :class:`Crash` (the machine goes down: nothing after
    it runs, not even cleanup); otherwise an ``OSError`` (EIO) the writer sees.
    """

    def __init__(self, at: int, *, crash: bool = True) -> None:
        self.at = at
        self.crash = crash
        self.calls: list[str] = []

    def _tick(self, name: str) -> None:
        self.calls.append(name)
        if len(self.calls) == self.at:
            if self.crash:
                raise Crash(name)
            raise OSError(errno.EIO, f"injected failure in {name}")

    def open_new(self, path: StrPath, mode: int = 0o644) -> int:
        self._tick("open_new")
        return super().open_new(path, mode)

    def link(self, src: StrPath, dst: StrPath) -> None:
        self._tick("link")
        super().link(src, dst)

    def unlink(self, path: StrPath) -> None:
        self._tick("unlink")
        super().unlink(path)

    def write(self, fd: int, data: bytes) -> None:
        self._tick("write")
        super().write(fd, data)

    def fsync_open_in_order(self, *files: tuple[int, StrPath], hinted: bool = False) -> None:
        self._tick("fsync_open_in_order")
        super().fsync_open_in_order(*files, hinted=hinted)

    def pull_trigger(self, path: Path) -> None:
        self._tick("pull_trigger")
        super().pull_trigger(path)


class RecordingFileOps(FaultyFileOps):
    """Never fails; records the order of steps."""

    def __init__(self) -> None:
        super().__init__(at=0)


def make_ctx(
    home: Path,
    *,
    fileops: FileOps | None = None,
    patches: frozenset[str] = frozenset(),
    inprocess: bool = True,
    uid: int = 1000,
) -> ProgramContext:
    runtime, _ = virtual_runtime(uid=uid)
    if fileops is not None:
        runtime.fileops = fileops
    return ProgramContext(
        home=home,
        runtime=runtime,
        stderr=io.BytesIO(),
        patches=patches,
        inprocess=inprocess,
    )
