"""Messages a scenario puts into a user's Maildir before its steps run.

A user's ``messages:`` list (model.MaildirMessage) gives each message's text,
and optionally its file name, flags and date. Without flags a message goes
into ``new/`` as it would after a delivery; with flags (even ``""``) into
``cur/`` as ``NAME:2,FLAGS``, as a mail reader leaves it (maildir(5)). The
date is the file's mtime, which qmail-pop3d (maildir.c) lists and orders by:
by default one second apart from 2001-09-09T01:46:40Z (epoch 1000000000), in
the order given, so that every target's clock, real or virtual, is past
them. A target's stamping of new deliveries keeps these dates
(harness.mailboxes.dated_on_purpose).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from harness.scenario.model import MaildirMessage

#: where default dates start (epoch seconds)
DEFAULT_FIRST_DATE = 1_000_000_000


def seed_maildir(maildir: Path, messages: Sequence[MaildirMessage]) -> list[Path]:
    """Write ``messages`` into ``maildir`` (which exists); the files written."""
    written = []
    for i, message in enumerate(messages):
        date = message.date if message.date is not None else DEFAULT_FIRST_DATE + i
        name = message.name or f"{int(date)}.{i + 1}.seed"
        if message.flags is None:
            path = maildir / "new" / name
        else:
            path = maildir / "cur" / f"{name}:2,{message.flags}"
        path.write_bytes(message.text.encode("utf-8"))
        os.utime(path, (date, date))
        written.append(path)
    return written


__all__ = ["DEFAULT_FIRST_DATE", "seed_maildir"]
