"""Writing a whole buffer to a descriptor, and a file written and fsynced.

qmail writes through substdio, whose allwrite() loops until every byte is
out; :func:`write_all` is that loop over ``os.write``. :func:`write_synced`
is the open_trunc/write/fsync/close sequence the cdb makers (qmail-newmrh,
qmail-newu, tcprules' cdb) use before renaming the file into place.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """allwrite(): write ``data`` to ``fd`` whatever the short writes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_synced(path: Path, data: bytes, mode: int = 0o644) -> None:
    """open_trunc (0666 less umask 033 is 0644), write all of ``data``, fsync, close."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
