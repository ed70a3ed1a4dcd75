"""``bin/qmail-qread``: list the queued messages and their recipients (qmail-qread.c).

For each message in ``info/`` (split directories 0..22 in order), one line::

    14 Nov 2023 22:13:20 GMT  #2160102  90  <a@example.org>  bouncing

— the info file's mtime as date822fmt prints it without its zone (with the
date-localtime patch: local time, still labelled GMT), the
message number, the size of ``mess/``, the sender, and `` bouncing`` when a
``bounce/`` file exists — then one line per recipient: ``\\tlocal\\t`` or
``\\tremote\\t`` and the address, prefixed by ``  done`` once delivered. Bytes
outside 32..126 print as ``_``. A message that cannot be read gives
``warning: trouble with #N: <error>``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from server.date822 import home_date
from server.maildirmake import error_str
from server.programs import ProgramContext
from server.qdir import qfn
from server.send.store import QueueStore


def _out(data: bytes) -> bytes:
    return bytes(b if 32 <= b <= 126 else 0x5F for b in data)


def _stats(date822: str, msgid: int, size: int, sender: bytes, bouncing: bool) -> bytes:
    # qmail-qread.c keeps date822fmt's text minus 7 bytes (" -0000\n") and writes
    # " GMT": with the date-localtime patch that is local time labelled GMT.
    date = date822[:-6]
    line = f"{date} GMT  #{msgid}  {size}  <".encode() + sender + b"> "
    return _out(line + (b" bouncing" if bouncing else b"")) + b"\n"


def _recipients(path: Path, channel: str) -> bytes:
    out = b""
    for record in path.read_bytes().split(b"\0")[:-1]:
        kind = record[:1]
        if kind in (b"D", b"T"):
            done = b"  done" if kind == b"D" else b""
            out += done + f"\t{channel}\t".encode() + _out(record[1:]) + b"\n"
    return out


def message_report(queue: Path, msgid: int, date: Callable[[int], str]) -> bytes:
    try:
        size = os.stat(qfn(queue, "mess", msgid)).st_size
        bouncing = qfn(queue, "bounce", msgid).exists()
        info = qfn(queue, "info", msgid)
        sender = info.read_bytes().partition(b"\0")[0][1:]
        qtime = int(os.stat(info).st_mtime)
    except OSError as exc:
        return f"warning: trouble with #{msgid}: {error_str(exc.errno)}\n".encode()
    out = _stats(date(qtime), msgid, size, sender, bouncing)
    for channel in ("local", "remote"):
        path = qfn(queue, channel, msgid)
        try:
            out += _recipients(path, channel)
        except FileNotFoundError:
            continue
        except OSError as exc:
            out += f"warning: trouble with #{msgid}: {error_str(exc.errno)}\n".encode()
    return out


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    queue = ctx.home / "queue"
    if not queue.is_dir():
        stdout.write(f"fatal: unable to chdir: {error_str(2)}\n".encode())
        return 111

    def date(t: int) -> str:
        return home_date(t, ctx.patches, env, ctx.home)

    for msgid in QueueStore(queue, ctx.runtime).subdir_ids("info"):
        stdout.write(message_report(queue, msgid, date))
    stdout.flush()
    return 0
