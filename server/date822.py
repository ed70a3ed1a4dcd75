"""qmail's RFC 822 dates (date822fmt.c), with and without the date-localtime patch.

Stock netqmail writes every date in GMT with the zone ``-0000``::

    25 Nov 2026 18:22:37 -0000

no weekday, the day of month without padding, the time with two digits per
field. date822fmt.c ends the text with a newline; our :func:`date822fmt`
returns it without one and callers add ``"\\n"`` where qmail's text has it.

John Saunders' qmail-date-localtime patch (one of the patches a home can
switch on, "date-localtime") makes date822fmt print the fields localtime()
gives for the same instant, followed by ``local - utc`` where ``local`` is
those fields read back as if they were GMT (datetime_untai): ``+HHMM`` when
that is >= 0 (so GMT itself prints ``+0000``, not ``-0000``), ``-HHMM``
when below, rounded to whole minutes. With a ``right/`` zone the fields lag
by the leap seconds, so ``right/UTC`` prints ``-0000`` and a time 27 s early.

Which local time: the C library's own. A zone is given as a ``TZ`` value
(:func:`zone_of`): a POSIX rule (``JST-9``, ``<+0530>-5:30``,
``EST5EDT,M3.2.0,M11.1.0``), a zone name, ``:name`` or ``:/path``; ``TZ``
unset means the zone file standing for /etc/localtime — the home's
``.qmail-sim/localtime`` when it has one, else the host's. :mod:`server.tzc`
asks the C library (time.localtime) under that ``TZ``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Final

from server import tzc

#: date822fmt.c's montab.
MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: A zone: a tzinfo, or a ``TZ`` value as the C library reads it.
Zone = _dt.tzinfo | str

#: The home patch (server.programs.PATCHES) that makes date822fmt local.
DATE_LOCALTIME: Final = "date-localtime"

#: Where a home of ours keeps the zone file that stands for /etc/localtime.
LOCALTIME_FILE: Final = ".qmail-sim/localtime"

#: glibc's TZDEFAULT: what localtime() reads when TZ is unset.
HOST_LOCALTIME: Final = "/etc/localtime"

Fields = tuple[int, int, int, int, int, int]  # year, month 1-12, day, hour, minute, second


def _fields(f: Fields) -> str:
    year, month, day, hour, minute, second = f
    return f"{day} {MONTHS[month - 1]} {year} {hour:02d}:{minute:02d}:{second:02d}"


def _offset_text(offset_seconds: int) -> str:
    # The patch: "+" unless local < utc; minutes = (|diff| + 30) / 60.
    sign = "-" if offset_seconds < 0 else "+"
    minutes = (abs(offset_seconds) + 30) // 60
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def _local_fields(t: int, tz: Zone | None) -> Fields:
    if isinstance(tz, str):
        return tzc.localtime(t, tz)
    when = _dt.datetime.fromtimestamp(t, _dt.UTC).astimezone(tz or _dt.UTC)
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)


def date822fmt(t: int, *, localtime: bool = False, tz: Zone | None = None) -> str:
    """The date for second ``t`` since the epoch, without date822fmt.c's newline.

    With ``localtime`` (the date-localtime patch) the time is shown in ``tz``
    (a tzinfo, or a ``TZ`` value for the C library; GMT when None) with its
    offset; without it, ``tz`` is ignored.
    """
    t = int(t)
    if not localtime:
        return f"{_fields(tzc.gmtime(t))} -0000"
    import calendar  # only for the patch: with the locale it imports, 3 ms of a start

    local = _local_fields(t, tz)
    return f"{_fields(local)} {_offset_text(calendar.timegm(local) - t)}"


def zone_of(env: Mapping[str, str], home: Path | None = None) -> str:
    """The ``TZ`` value localtime() works from in a program with ``env``.

    ``TZ`` when set (even empty: the C library then uses UTC); unset, the
    zone file that stands for /etc/localtime: ``home``'s ``.qmail-sim/localtime``
    when there is one, else the host's /etc/localtime.
    """
    if "TZ" in env:
        return env["TZ"]
    if home is not None and (home / LOCALTIME_FILE).exists():
        return f":{home / LOCALTIME_FILE}"
    return tzc.UNSET


def home_date(
    t: int, patches: Collection[str], env: Mapping[str, str], home: Path | None = None
) -> str:
    """date822fmt as a home's programs print it: GMT, or with the date-localtime
    patch the local time of ``TZ`` in ``env`` (else of the home's localtime file).
    """
    if DATE_LOCALTIME in patches:
        return date822fmt(t, localtime=True, tz=zone_of(env, home))
    return date822fmt(t)


def session_date(
    localtime: bool, env: Mapping[str, str], home: Path | None = None
) -> Callable[[int], bytes]:
    """date822fmt with the zone found once, as a server's core stamps its
    Received: lines (none without ``localtime``: GMT is shown)."""
    tz = zone_of(env, home) if localtime else None

    def date(t: int) -> bytes:
        return date822fmt(t, localtime=localtime, tz=tz).encode()

    return date
