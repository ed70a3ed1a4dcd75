"""Read delivered mail: Maildirs (through :mod:`mailbox`) and mboxes, as plain records.

A :class:`Delivered` holds one message's file name, headers and body, so
``expect`` can check them and a report can print them.
"""

from __future__ import annotations

import email.parser
import email.policy
import mailbox
import os
from dataclasses import dataclass
from pathlib import Path

_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)

#: A Maildir file whose mtime is further than this from its ctime had its date
#: set on purpose (``touch -d``, a seeded message), not by the write that
#: delivered it: a delivery's last write and its link into new/ are moments
#: apart, while setting a date with utime() leaves the ctime at the real now.
DATED_SLACK = 10.0


def dated_on_purpose(path: str) -> bool:
    """Whether a delivered file carries a date of its own, which a target's
    clock stamp must keep: qmail-pop3d (maildir.c) orders and lists by it."""
    st = os.stat(path)
    return abs(st.st_ctime - st.st_mtime) > DATED_SLACK


@dataclass(frozen=True, kw_only=True)
class Delivered:
    filename: str
    raw: bytes
    from_line: str = ""  # mbox only

    @property
    def headers(self) -> email.message.Message:
        return _PARSER.parsebytes(self.raw)

    @property
    def body(self) -> str:
        text = self.raw.decode("utf-8", "replace")
        _, sep, body = text.partition("\n\n")
        return body if sep else ""


def read_maildir(path: Path) -> list[Delivered]:
    """Messages in new/ and cur/, oldest first (qmail's names start with the time)."""
    if not (path / "new").is_dir():
        return []
    box = mailbox.Maildir(path, factory=None, create=False)
    try:
        keys = set(box.keys())
    finally:
        box.close()
    out = []
    for sub in ("new", "cur"):
        for f in sorted((path / sub).iterdir()):
            if f.name.split(":")[0] in keys:
                out.append(Delivered(filename=f"{sub}/{f.name}", raw=f.read_bytes()))
    return sorted(out, key=lambda d: d.filename.split("/", 1)[1])


def read_mbox(path: Path) -> list[Delivered]:
    if not path.is_file():
        return []
    box = mailbox.mbox(path, create=False)
    try:
        out = []
        for key in list(box.iterkeys()):
            msg = box.get_message(key)
            out.append(
                Delivered(
                    filename=path.name, raw=box.get_bytes(key), from_line="From " + msg.get_from()
                )
            )
        return out
    finally:
        box.close()
