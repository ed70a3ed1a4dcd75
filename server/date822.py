"""qmail's RFC 822 dates (date822fmt.c), with and without the date-localtime patch.

Stock netqmail writes every date in GMT with the zone ``-0000``::

    25 Nov 2026 18:22:37 -0000

no weekday, the day of month without padding, the time with two digits per
field. date822fmt.c ends the text with a newline; our :func:`date822fmt`
returns it without one and callers add ``"\\n"`` where qmail's text has it.

John Saunders' qmail-date-localtime patch (one of the patches a home can
switch on, "date-localtime") makes date822fmt print the local time of the
same instant followed by its offset from GMT: ``+HHMM`` when local time is
at or ahead of GMT (so GMT itself prints ``+0000``, not ``-0000``),
``-HHMM`` when behind, the offset rounded to whole minutes.

The local zone is never read here: the caller passes a :class:`datetime.tzinfo`
(e.g. ``zoneinfo.ZoneInfo("Europe/Berlin")``) or a zone name.
:func:`zone_from_env` is the edge helper that turns a program's ``TZ``
variable into one, as libc's localtime() would.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Collection, Mapping
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: date822fmt.c's montab.
MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Zone = _dt.tzinfo | str

#: The home patch (server.programs.PATCHES) that makes date822fmt local.
DATE_LOCALTIME: Final = "date-localtime"


def _zone(tz: Zone | None) -> _dt.tzinfo:
    if tz is None:
        return _dt.UTC
    if isinstance(tz, str):
        return ZoneInfo(tz)
    return tz


def _fields(when: _dt.datetime) -> str:
    return (
        f"{when.day} {MONTHS[when.month - 1]} {when.year} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )


def _offset_text(offset_seconds: int) -> str:
    # The patch: "+" unless local < utc; minutes = (|diff| + 30) / 60.
    sign = "-" if offset_seconds < 0 else "+"
    minutes = (abs(offset_seconds) + 30) // 60
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def date822fmt(t: int, *, localtime: bool = False, tz: Zone | None = None) -> str:
    """The date for second ``t`` since the epoch, without date822fmt.c's newline.

    With ``localtime`` (the date-localtime patch) the time is shown in ``tz``
    (GMT when ``tz`` is None) with its offset; without it, ``tz`` is ignored.
    """
    utc = _dt.datetime.fromtimestamp(int(t), _dt.UTC)
    if not localtime:
        return f"{_fields(utc)} -0000"
    local = utc.astimezone(_zone(tz))
    offset = local.utcoffset() or _dt.timedelta(0)
    return f"{_fields(local)} {_offset_text(int(offset.total_seconds()))}"


def zone_from_env(env: Mapping[str, str]) -> _dt.tzinfo | None:
    """The zone ``TZ`` names (``Europe/Berlin`` or ``:Europe/Berlin``), else None.

    None means "no zone given": callers then use GMT, which is what libc's
    localtime() gives on a machine without /etc/localtime. An unknown name is
    GMT as well, as libc treats a TZ it cannot load.
    """
    name = env.get("TZ", "").lstrip(":")
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return _dt.UTC


def home_date(t: int, patches: Collection[str], env: Mapping[str, str]) -> str:
    """date822fmt as a home's programs print it: GMT, or with the date-localtime
    patch the local time of the zone ``TZ`` in ``env`` names (GMT without one).
    """
    if DATE_LOCALTIME in patches:
        return date822fmt(t, localtime=True, tz=zone_from_env(env))
    return date822fmt(t)
