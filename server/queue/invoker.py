"""Who runs qmail-queue, and the Received line and date that follow from it.

qmail-queue.c words its ``Received: (qmail N invoked ...)`` line from its
real uid: ``by alias`` for the alias user (auto_uida), ``from network`` for
qmaild (auto_uidd), ``for bounce`` for qmails (auto_uids), else ``by uid N``.
In a split home (one with ``HOME/.qmail-sim/ids``) a qmail-queue process
does exactly that, with the ids the home was made with
(:func:`invoker_from_uid`), and nothing the caller says counts. A one-user
home cannot tell those apart by uid, so the caller says who it is
(DESIGN.md, "Users and privileges"): in-process as an :data:`Invoker`, and
to a qmail-queue process through :data:`INVOKER_ENV`. Without that variable
a process compares its real uid with those of qmail's users, when the
system has them, and is otherwise "invoked by uid <its real uid>".

The ``u`` record of ``intd/`` holds the real uid (or the uid an int invoker
names): qmail-send logs it in ``info msg N: ... uid U``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from server.date822 import home_date
from server.privsep import QmailIds
from server.programs import ProgramContext
from server.queue.core import QueueJob, check_home, received_line

Invoker = Literal["network", "bounce", "alias"] | int

#: Our variable (not qmail's) that tells a qmail-queue process who called it.
INVOKER_ENV: Final = "QMAILSIM_INVOKER"

_NAMED: Final[dict[str, str]] = {
    "alias": "by alias",
    "network": "from network",
    "bounce": "for bounce",
}


def invoked_text(invoker: Invoker) -> str:
    """The words after ``invoked `` in the Received line."""
    if isinstance(invoker, int):
        return f"by uid {invoker}"
    return _NAMED[invoker]


def invoker_env_value(invoker: Invoker) -> str:
    return str(invoker)


#: qmail's users (INSTALL.ids) whose uids qmail-queue.c compares with its
#: real uid: auto_uida, auto_uidd, auto_uids.
QMAIL_USERS: Final[dict[str, Invoker]] = {"alias": "alias", "qmaild": "network", "qmails": "bounce"}


def invoker_from_uid(real_uid: int, ids: QmailIds) -> Invoker:
    """qmail-queue.c: getuid() against auto_uida, auto_uidd, auto_uids, in that order."""
    if real_uid == ids.alias:
        return "alias"
    if real_uid == ids.qmaild:
        return "network"
    if real_uid == ids.qmails:
        return "bounce"
    return real_uid


def invoker_from_env(
    env: Mapping[str, str], real_uid: int, qmail_uids: Mapping[int, Invoker] | None = None
) -> Invoker:
    """The invoker a process was told, else what its real uid says.

    ``qmail_uids`` maps the uids of qmail's users (alias, qmaild, qmails) to
    their invoker, as qmail-queue.c compares getuid() with auto_uida/uidd/uids;
    any other uid, or an unknown variable value, is "by uid <real uid>".
    """
    value = env.get(INVOKER_ENV, "")
    if value == "network":
        return "network"
    if value == "bounce":
        return "bounce"
    if value == "alias":
        return "alias"
    if value.isascii() and value.isdigit():
        return int(value)
    if qmail_uids is not None and real_uid in qmail_uids:
        return qmail_uids[real_uid]
    return real_uid


def record_uid(invoker: Invoker, real_uid: int, named_uids: Mapping[str, int] | None = None) -> int:
    """The uid for the ``u`` record.

    ``named_uids`` maps "alias", "network" and "bounce" to the uids of the
    system's alias, qmaild and qmails users, where it has them: the uid a
    real qmail-queue would have run as on that path (qmail-send logs it).
    """
    if isinstance(invoker, int):
        return invoker
    if named_uids is not None and invoker in named_uids:
        return named_uids[invoker]
    return real_uid


def make_job(
    ctx: ProgramContext,
    env: Mapping[str, str],
    pid: int,
    invoker: Invoker,
    named_uids: Mapping[str, int] | None = None,
) -> QueueJob:
    """Everything qmail-queue fixes before touching a file (may raise 61/62)."""
    queue = check_home(ctx.home)
    start = ctx.runtime.now()
    return QueueJob(
        queue=queue,
        pid=pid,
        uid=record_uid(invoker, ctx.runtime.uid, named_uids),
        starttime=start,
        received=received_line(
            pid, invoked_text(invoker), home_date(start, ctx.patches, env, ctx.home)
        ),
    )
