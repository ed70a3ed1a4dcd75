"""What qmail-lspawn and qmail-rspawn are to qmail-send: delivery channels.

qmail-send hands each delivery to a channel (``local`` or ``remote``) and
gets back one report, the bytes qmail-lspawn's or qmail-rspawn's ``report()``
writes after the delivery number (qmail-lspawn.c, qmail-rspawn.c): a letter
``K`` (success), ``Z`` (deferral) or ``D`` (failure) followed by the text, which
may span lines, without the terminating NUL. qmail-send logs it with spaces
turned to ``_`` and newlines to ``/`` (qmail-send.c, logsafe).

In the simulator a channel is called synchronously at the current virtual
time; the daemon calls channels from worker threads, up to
``concurrencylocal``/``concurrencyremote`` at once. Program-style
``bin/qmail-lspawn`` and ``bin/qmail-rspawn`` speak qmail's pipe protocol and
call the same channel objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

ChannelName = Literal["local", "remote"]


@dataclass(frozen=True, kw_only=True)
class DeliveryJob:
    """One recipient of one message, as qmail-send passes it to a spawn program."""

    msgid: int
    message: Path  # queue/mess/<split>/<id>, the message as qmail-queue wrote it
    sender: str  # envelope sender, "" for a bounce
    recipient: str  # local: "local@domain" after virtualdomains; remote: the address


class Channel(Protocol):
    def deliver(self, job: DeliveryJob) -> bytes:
        """Run the delivery; return the report (``b"K..."``, ``b"Z..."``, ``b"D..."``)."""
        ...
