"""qmail-send's job and delivery tables (qmail-send.c JOBS, DELIVERIES).

A *job* is one pass over one message's ``local/`` or ``remote/`` file. It
holds a reference for the pass itself and one per delivery in flight; when
the last reference goes, :meth:`Scheduler.job_close` decides whether the file
is finished (every recipient marked ``D``) or goes back into the channel's
schedule at ``retry``. A *delivery* is one recipient handed to a channel,
numbered from 1 across the run (``starting delivery N``), in a slot below the
channel's concurrency (the ``delnum`` byte of the spawn protocol).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.spawn import ChannelName


@dataclass(eq=False, kw_only=True)
class Job:
    msgid: int
    channel: ChannelName
    retry: int
    sender: str
    dying: bool
    refs: int = 1
    numtodo: int = 0
    hiteof: bool = False


@dataclass(eq=False, kw_only=True)
class Delivery:
    slot: int
    delid: int
    job: Job
    mpos: int  # offset of this recipient's T record in the channel file
    recip: str


@dataclass(kw_only=True)
class ChanPass:
    """The channel's current pass: the records of one file, read in order."""

    job: Job
    records: list[bytes]
    index: int = 0
    mpos: int = 0


@dataclass(kw_only=True)
class Slots:
    """d[c][]: concurrency slots of one channel."""

    limit: int
    used: dict[int, Delivery] = field(default_factory=dict)

    def free_slot(self) -> int | None:
        for i in range(self.limit):
            if i not in self.used:
                return i
        return None


def records(data: bytes) -> list[bytes]:
    """NUL-terminated records; an unterminated tail is EOF, as getln's no-match."""
    return data.split(b"\0")[:-1]


def senderadd(sender: str, recip: str) -> str:
    """The envelope sender a spawn program sees (qmail-send.c senderadd).

    A sender ``owner-@host-@[]`` asks for VERP: for recipient ``box@dom`` it
    becomes ``owner-box=dom@host``.
    """
    if sender.endswith("-@[]"):
        j = sender.rfind("@", 0, len(sender) - 4)
        k = recip.rfind("@")
        if k != -1 and j != -1 and j + 5 <= len(sender):
            return f"{sender[:j]}{recip[:k]}={recip[k + 1 :]}@{sender[j + 1 : len(sender) - 4]}"
    return sender
