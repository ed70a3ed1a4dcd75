"""date822fmt.c, and the date-localtime patch's local variant."""

from __future__ import annotations

import datetime as dt
import email.utils
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.date822 import date822fmt, home_date, zone_from_env

T = 1_700_000_000  # 2023-11-14 22:13:20 UTC
MAX_T = 253402300799  # 9999-12-31 23:59:59


def test_gmt_format_byte_exact() -> None:
    assert date822fmt(T) == "14 Nov 2023 22:13:20 -0000"
    assert date822fmt(0) == "1 Jan 1970 00:00:00 -0000"
    # The day is not padded, the time fields are.
    assert date822fmt(1_000_000_000) == "9 Sep 2001 01:46:40 -0000"


def test_gmt_ignores_the_zone() -> None:
    assert date822fmt(T, tz="Europe/Berlin") == "14 Nov 2023 22:13:20 -0000"


@pytest.mark.parametrize(
    ("zone", "text"),
    [
        ("Europe/Berlin", "14 Nov 2023 23:13:20 +0100"),
        ("America/New_York", "14 Nov 2023 17:13:20 -0500"),
        ("Asia/Kolkata", "15 Nov 2023 03:43:20 +0530"),
        ("UTC", "14 Nov 2023 22:13:20 +0000"),
        ("Pacific/Chatham", "15 Nov 2023 11:58:20 +1345"),
    ],
)
def test_localtime_patch(zone: str, text: str) -> None:
    assert date822fmt(T, localtime=True, tz=ZoneInfo(zone)) == text
    assert date822fmt(T, localtime=True, tz=zone) == text


def test_localtime_without_a_zone_is_gmt_with_plus() -> None:
    # The patch prints "+" unless local time is behind GMT.
    assert date822fmt(T, localtime=True) == "14 Nov 2023 22:13:20 +0000"


def test_localtime_rounds_odd_offsets_to_the_minute() -> None:
    # Liberia kept -0:44:30 until 1972: (2670 + 30) / 60 = 45 minutes.
    t = int(dt.datetime(1960, 6, 1, 12, tzinfo=dt.UTC).timestamp())
    assert date822fmt(t, localtime=True, tz="Africa/Monrovia").endswith(" -0045")


def test_summer_time() -> None:
    t = int(dt.datetime(2024, 7, 1, 12, tzinfo=dt.UTC).timestamp())
    assert date822fmt(t, localtime=True, tz="Europe/Berlin") == "1 Jul 2024 14:00:00 +0200"


def test_zone_from_env() -> None:
    assert zone_from_env({}) is None
    assert zone_from_env({"TZ": ""}) is None
    assert zone_from_env({"TZ": ":Europe/Berlin"}) == ZoneInfo("Europe/Berlin")
    assert zone_from_env({"TZ": "No/Such_Zone"}) == dt.UTC


def test_home_date_follows_the_patch() -> None:
    env = {"TZ": "Europe/Berlin"}
    assert home_date(T, frozenset(), env) == "14 Nov 2023 22:13:20 -0000"
    assert home_date(T, frozenset({"date-localtime"}), env) == "14 Nov 2023 23:13:20 +0100"


@given(st.integers(min_value=0, max_value=MAX_T))
def test_gmt_parses_back(t: int) -> None:
    parsed = email.utils.parsedate_to_datetime(date822fmt(t))
    # "-0000" means "UTC, origin unknown": email.utils gives a naive datetime.
    assert parsed.tzinfo is None
    assert parsed.replace(tzinfo=dt.UTC).timestamp() == t


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Adelaide"]


@given(st.integers(min_value=100_000_000, max_value=4_000_000_000), st.sampled_from(ZONES))
def test_localtime_parses_back(t: int, zone: str) -> None:
    text = date822fmt(t, localtime=True, tz=zone)
    parsed = email.utils.parsedate_to_datetime(text)
    assert parsed.timestamp() == t
    assert parsed.utcoffset() == dt.datetime.fromtimestamp(t, ZoneInfo(zone)).utcoffset()
