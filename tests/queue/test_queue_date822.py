"""date822fmt.c, and the date-localtime patch's local variant."""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import shutil
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server import tzc
from server.date822 import LOCALTIME_FILE, date822fmt, home_date, zone_of

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


@pytest.mark.parametrize(
    ("tz", "text"),
    [
        ("JST-9", "15 Nov 2023 07:13:20 +0900"),
        ("<+0530>-5:30", "15 Nov 2023 03:43:20 +0530"),
        ("EST5EDT,M3.2.0,M11.1.0", "14 Nov 2023 17:13:20 -0500"),
        ("<-03>3", "14 Nov 2023 19:13:20 -0300"),
        (":Asia/Tokyo", "15 Nov 2023 07:13:20 +0900"),
        (":/usr/share/zoneinfo/Asia/Kolkata", "15 Nov 2023 03:43:20 +0530"),
        # right/ zones count leap seconds: the fields lag 27 s, and local < utc
        ("right/UTC", "14 Nov 2023 22:12:53 -0000"),
        ("right/Asia/Tokyo", "15 Nov 2023 07:12:53 +0900"),
        ("", "14 Nov 2023 22:13:20 +0000"),  # TZ set but empty: UTC
        ("No/Such_Zone", "14 Nov 2023 22:13:20 +0000"),
    ],
)
def test_every_tz_form_the_c_library_reads(tz: str, text: str) -> None:
    if tz.startswith("right/") and not Path("/usr/share/zoneinfo/right/UTC").exists():
        pytest.skip("no right/ zones installed")
    assert date822fmt(T, localtime=True, tz=tz) == text
    assert home_date(T, {"date-localtime"}, {"TZ": tz}) == text


def test_unset_tz_is_the_homes_localtime_file(tmp_path: Path) -> None:
    assert zone_of({"TZ": "JST-9"}, tmp_path) == "JST-9"
    assert zone_of({}, tmp_path) == tzc.UNSET
    (tmp_path / ".qmail-sim").mkdir()
    shutil.copyfile("/usr/share/zoneinfo/Asia/Tokyo", tmp_path / LOCALTIME_FILE)
    assert zone_of({}, tmp_path) == f":{tmp_path / LOCALTIME_FILE}"
    assert home_date(T, {"date-localtime"}, {}, tmp_path) == "15 Nov 2023 07:13:20 +0900"
    assert home_date(T, {"date-localtime"}, {"TZ": ""}, tmp_path).endswith(" +0000")


def test_unset_tz_without_a_file_is_the_hosts(tmp_path: Path) -> None:
    host = time.localtime(T)
    text = home_date(T, {"date-localtime"}, {}, tmp_path)
    assert text.startswith(f"{host.tm_mday} ") and f" {host.tm_hour:02d}:" in text


def test_the_processs_own_tz_needs_no_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tzc, "_helper", None)  # calling it would fail
    assert tzc.localtime(T, tzc.PROCESS_TZ) == tuple(time.localtime(T)[:6])


def test_a_tz_set_later_goes_to_a_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    # glibc's localtime_r would not reread TZ: the helper must answer.
    monkeypatch.setenv("TZ", "JST-9")
    assert tzc.localtime(T, "JST-9") == (2023, 11, 15, 7, 13, 20)


def test_a_forked_child_starts_its_own_helper() -> None:
    assert tzc.localtime(T, "<-03>3")[3] == 19
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        os._exit(0 if tzc.localtime(T, "<-03>3")[3] == 19 else 1)
    assert os.waitpid(pid, 0)[1] == 0


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
