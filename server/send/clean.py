"""``bin/qmail-clean``: removes queue files on qmail-send's behalf (qmail-clean.c).

It reads NUL-terminated commands on stdin and answers one byte each on
stdout: ``foop/N`` unlinks ``intd/N`` and ``mess/<split>/N``; ``todo/N``
unlinks ``intd/N`` and ``todo/N``. ``+`` means done (a missing file is not an
error), ``!`` an unlink failed, ``x`` a malformed command. Every 30 commands
(and before the first) it removes ``pid/`` files unused for 36 hours.

One quirk is kept: qmail-clean.c's digit check answers ``x`` and then goes on
(its ``continue`` leaves only the inner loop), so a command like ``foop/12a``
gets ``x`` and then ``+`` for message 12. qmail-send never sends one.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from server.programs import ProgramContext
from server.queue.core import apply_cleanup, scan_pids
from server.queue.states import QueueListing, RemovePid, stale_cleanup_actions
from server.send.store import QueueStore

PID_CLEANUP_EVERY = 30
#: commands carried out at once when several are waiting
UNLINK_THREADS = 4


def _scan_ulong(text: bytes) -> int | None:
    digits = len(text) - len(text.lstrip(b"0123456789"))
    return int(text[:digits]) if digits else None


def answers(command: bytes, store: QueueStore) -> bytes:
    """The byte(s) qmail-clean writes for one command (without its NUL)."""
    line = command + b"\0"
    if len(line) < 7 or len(line) > 100:
        return b"x"
    out = b""
    if any(not (0x30 <= b <= 0x39) for b in line[5:-1]):
        out += b"x"
    msgid = _scan_ulong(line[5:])
    if msgid is None:
        return out + b"x"
    if line.startswith(b"foop/"):
        return out + _unlink(store, ("intd", "mess"), msgid)
    if line.startswith(b"todo/"):
        return out + _unlink(store, ("intd", "todo"), msgid)
    return out + b"x"


def _unlink(store: QueueStore, subs: tuple[str, str], msgid: int) -> bytes:
    for sub in subs:
        try:
            os.unlink(store.path_str(sub, msgid))
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                return b"!"
    return b"+"


def cleanuppid(store: QueueStore) -> None:
    now = store.runtime.now()
    actions = [
        a
        for a in stale_cleanup_actions(QueueListing(pid=scan_pids(store.queue)), now)
        if isinstance(a, RemovePid)
    ]
    apply_cleanup(store.queue, list(actions), store.runtime.fileops)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    queue = ctx.home / "queue"
    if not queue.is_dir():
        return 111
    store = QueueStore(queue, ctx.runtime)
    with ThreadPoolExecutor(UNLINK_THREADS, thread_name_prefix="clean") as pool:
        return _serve(store, stdin, stdout, pool)


def _serve(store: QueueStore, stdin: BinaryIO, stdout: BinaryIO, pool: ThreadPoolExecutor) -> int:
    """qmail-clean.c's loop. Commands that arrive together (qmail-send's queue
    steps run in threads) are carried out at once in ``pool``, each one's two
    unlinks in order, and answered in the order they came, in one write."""
    countdown = 0
    buffer = b""
    pending: list[Future[bytes]] = []
    while True:
        if countdown:
            countdown -= 1
        else:
            cleanuppid(store)
            countdown = PID_CLEANUP_EVERY
        while b"\0" not in buffer:
            chunk = stdin.read1(1024) if hasattr(stdin, "read1") else stdin.read(1024)
            if not chunk:
                return 0  # EOF, or an unterminated last command: qmail exits 0
            buffer += chunk
        command, _, buffer = buffer.partition(b"\0")
        if pending or b"\0" in buffer:
            pending.append(pool.submit(answers, command, store))
            if b"\0" in buffer:
                continue  # more commands already here: answer them together
            out = b"".join(job.result() for job in pending)
        else:
            out = answers(command, store)  # one alone: no thread
        try:
            stdout.write(out)
            stdout.flush()
        except OSError:
            return 100
        pending = []
