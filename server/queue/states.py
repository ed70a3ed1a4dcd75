"""The states of a message in the queue, and the cleanup of stale ones.

INTERNALS section 2 names five states by which files exist (S1-S5); a
qmail-queue that dies part way adds two more, with its pid/ file still
present. :data:`STATES` lists them all; :data:`STEPS` gives each ordered
step of :func:`server.queue.core.write_queue` with the exit code a failure
there gives and the state once it is done, so "crash before step k" must
leave exactly ``STEPS[k-1].before``'s files on disk (tests/queue check it).

Nothing acknowledged is ever lost: exit 0 comes after step 8 (the link to
todo/), and from there on the message is in S4, which qmail-send delivers.
Nothing half-written is ever in todo/: todo/N is a second name for intd/N
made only after mess/N and intd/N were written and fsync'd, in that order.

Cleanup (INTERNALS section 6) is qmail-send's and qmail-clean's job;
:func:`stale_cleanup_actions` is its rule as a pure function over a
:class:`QueueListing` (server.send.phases runs it on qmail-send's cleanup pass):

- qmail-clean.c cleanuppid(): a ``pid/`` file is removed once
  ``now >= atime + OSSIFIED``;
- qmail-send.c cleanup_do(): a ``mess/`` file whose ``now > atime + OSSIFIED``
  and that has neither ``info/`` nor ``todo/`` is handed to qmail-clean as
  ``foop/N``, which unlinks ``intd/N`` (if any) and then ``mess/N``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final

from server.queue import codes

#: qmail-send.c/qmail-clean.c ``#define OSSIFIED 129600`` (36 hours); must
#: exceed qmail-queue's DEATH (24 hours).
OSSIFIED: Final = 129600
#: qmail-send.c ``#define SLEEP_CLEANUP 76431``: time between cleanup passes.
SLEEP_CLEANUP: Final = 76431


@dataclass(frozen=True, kw_only=True)
class QueueState:
    name: str
    #: Directories that hold a file for the message in this state.
    files: frozenset[str]
    #: Directories that may or may not (INTERNALS' "?").
    maybe: frozenset[str] = frozenset()
    meaning: str
    cleanup: str


def _state(name: str, files: str, meaning: str, cleanup: str, maybe: str = "") -> QueueState:
    return QueueState(
        name=name,
        files=frozenset(files.split()),
        maybe=frozenset(maybe.split()),
        meaning=meaning,
        cleanup=cleanup,
    )


_STALE = "after 36 hours qmail-send has qmail-clean unlink intd/N (if any), then mess/N"
_STALE_PID = "after 36 hours qmail-clean unlinks the pid/ file"

STATES: Final[dict[str, QueueState]] = {
    s.name: s
    for s in (
        _state("S1", "", "no message", "nothing to do"),
        _state("P1", "pid", "qmail-queue made its pid/ file", _STALE_PID),
        _state("P2", "pid mess", "pid/ file linked to mess/N", f"{_STALE_PID}; then {_STALE}"),
        _state("S2", "mess", "message being written, or being eliminated", _STALE),
        _state("S3", "mess intd", "envelope being written", _STALE),
        _state(
            "S4",
            "mess todo",
            "queued: acknowledged by exit 0",
            "none: qmail-send preprocesses todo/N",
            maybe="intd info local remote",
        ),
        _state(
            "S5",
            "mess info",
            "preprocessed: being delivered",
            "none: qmail-send delivers, then removes info/N and mess/N",
            maybe="local remote bounce",
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str
    #: The FileOps call that does it.
    op: str
    #: qmail-queue's exit code when it fails (None: failure ignored).
    fails_with: int | None
    before: str
    after: str


def _steps(*rows: tuple[str, str, int | None, str, str]) -> tuple[Step, ...]:
    return tuple(Step(name=n, op=o, fails_with=f, before=b, after=a) for n, o, f, b, a in rows)


#: write_queue's durable steps, in order (qmail-queue.c main()):
#: (what, FileOps call, exit code if it fails, state before, state after).
STEPS: Final[tuple[Step, ...]] = _steps(
    ("create pid file", "open_new", codes.PID_TROUBLE, "S1", "P1"),
    ("link pid to mess", "link", codes.MESS_TROUBLE, "P1", "P2"),
    ("unlink pid file", "unlink", codes.PID_TROUBLE, "P2", "S2"),
    ("write message", "write", codes.WRITE_ERROR, "S2", "S2"),
    ("create intd", "open_new", codes.INTD_TROUBLE, "S2", "S3"),
    ("write envelope", "write", codes.WRITE_ERROR, "S3", "S3"),
    ("fsync message, then envelope", "fsync_open_in_order", codes.WRITE_ERROR, "S3", "S3"),
    ("link intd to todo", "link", codes.TODO_TROUBLE, "S3", "S4"),
    ("pull trigger", "pull_trigger", None, "S4", "S4"),
)


# --- cleanup ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class QueueListing:
    """What the cleanup rule looks at: names and access times."""

    #: pid/ file name -> atime (seconds)
    pid: Mapping[str, int] = field(default_factory=dict)
    #: message number -> atime of mess/<split>/N
    mess: Mapping[int, int] = field(default_factory=dict)
    info: frozenset[int] = frozenset()
    todo: frozenset[int] = frozenset()


@dataclass(frozen=True)
class RemovePid:
    """qmail-clean's cleanuppid(): unlink ``pid/<name>``."""

    name: str


@dataclass(frozen=True)
class CleanMessage:
    """qmail-send's ``foop/N`` to qmail-clean: unlink ``intd/N``, then ``mess/N``."""

    msgid: int


CleanupAction = RemovePid | CleanMessage


def stale_cleanup_actions(
    listing: QueueListing, now: int, *, busy: Collection[int] = ()
) -> list[CleanupAction]:
    """What qmail-clean and qmail-send remove at ``now``.

    ``busy`` are messages qmail-send is eliminating itself (INTERNALS 6:
    "other than one it is currently eliminating").
    """
    actions: list[CleanupAction] = [
        RemovePid(name)
        for name, atime in sorted(listing.pid.items())
        if now >= atime + OSSIFIED  # qmail-clean.c: skip while time < atime + OSSIFIED
    ]
    for msgid, atime in sorted(listing.mess.items()):
        if now <= atime + OSSIFIED:  # qmail-send.c: return while recent <= atime + OSSIFIED
            continue
        if msgid in listing.info or msgid in listing.todo or msgid in busy:
            continue
        actions.append(CleanMessage(msgid))
    return actions
