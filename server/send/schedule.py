"""qmail-send's retry schedule and timing constants (qmail-send.c).

A message born at ``birth`` (the mtime of its ``info/`` file) and attempted
at ``recent`` is next tried at ``birth + (isqrt(recent - birth) + c)**2``
where ``c`` is the channel's ``chanskip``: 10 for local, 20 for remote.
qmail computes the square root with integer arithmetic (the largest ``y``
with ``y*y <= x``), so an idle local message is tried at birth + 0, 100,
400, 900, 1600, ... seconds and a remote one at birth + 0, 400, 1600, 3600 ...
"""

from __future__ import annotations

import math
from typing import Final

from server.spawn import ChannelName

#: check todo/ every 25 minutes in any case
SLEEP_TODO: Final = 1500
#: qmail sleeps one second past a wake-up "to avoid zeno effect"
SLEEP_FUZZ: Final = 1
#: the longest select() qmail-send ever does
SLEEP_FOREVER: Final = 86400
#: time between passes over mess/ looking for stale files
SLEEP_CLEANUP: Final = 76431
#: how long to wait after a failed stat/unlink before trying again
SLEEP_SYSFAIL: Final = 123
#: 36 hours; must exceed qmail-queue's 24-hour DEATH
OSSIFIED: Final = 129600
#: queuelifetime's default, one week
DEFAULT_LIFETIME: Final = 604800
#: qmail-send.c REPORTMAX: bytes of a report line kept, including the delivery number
REPORTMAX: Final = 10000
#: conf-spawn: the spawn programs' concurrency limit, which caps concurrency*
AUTO_SPAWN: Final = 120

CHANNELS: Final[tuple[ChannelName, ChannelName]] = ("local", "remote")
CHANSKIP: Final[dict[ChannelName, int]] = {"local": 10, "remote": 20}


def squareroot(x: int) -> int:
    """The largest ``y`` with ``y*y <= x`` (qmail-send.c squareroot, for x >= 0).

    qmail's loop only looks at 16 bits of result, so it saturates at 65535
    (an age of about 136 years); ``math.isqrt`` agrees below that.
    """
    if x < 0:
        raise ValueError("squareroot of a negative age")
    return min(math.isqrt(x), 0xFFFF)


def nextretry(birth: int, recent: int, channel: ChannelName) -> int:
    """When a job opened at ``recent`` is next due if anything is deferred."""
    n = 0 if birth > recent else squareroot(recent - birth)
    n += CHANSKIP[channel]
    return birth + n * n


def is_dying(birth: int, recent: int, lifetime: int) -> bool:
    """Past queuelifetime: this attempt's deferrals become failures."""
    return recent > birth + lifetime
