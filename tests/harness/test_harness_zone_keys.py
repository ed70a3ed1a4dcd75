"""The scenario keys ``tz`` and ``localtime`` (harness.targets.zone) and
``compare --reference-patches`` (a reference built with patches)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from harness import netns
from harness.commands.compare import patch_list
from harness.compare import NotComparable, compare
from harness.runner import bundled_suite, load_all
from harness.scenario import Scenario
from harness.targets.qmail import QmailTarget
from harness.targets.sim import SimTarget
from harness.targets.zone import install_localtime, zone_env, zone_file
from server.date822 import LOCALTIME_FILE

SCENARIO = """\
name: zoned
tz: JST-9
localtime: Asia/Tokyo
patches: [date-localtime]
steps:
  - run: idle
"""


def load(tmp_path: Path, text: str) -> tuple[list[Scenario], list[str]]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    loaded, broken = load_all([path])
    return loaded, [b.message for b in broken]


def test_the_keys_load(tmp_path: Path) -> None:
    (scenario,), broken = load(tmp_path, SCENARIO)
    assert not broken
    assert (scenario.tz, scenario.localtime) == ("JST-9", "Asia/Tokyo")
    assert zone_env(scenario) == {"TZ": "JST-9"}


@pytest.mark.parametrize("name", ["No/Such_Zone", "/etc/passwd", "../../etc/passwd"])
def test_localtime_must_name_a_zone_file(tmp_path: Path, name: str) -> None:
    loaded, broken = load(tmp_path, SCENARIO.replace("Asia/Tokyo", name))
    assert not loaded and "localtime" in broken[0]
    with pytest.raises(ValueError):
        zone_file(name)


def test_the_home_gets_the_zone_file(tmp_path: Path) -> None:
    (scenario,), _ = load(tmp_path, SCENARIO)
    copy = install_localtime(tmp_path, scenario)
    assert copy == tmp_path / LOCALTIME_FILE
    assert copy.read_bytes() == zone_file("Asia/Tokyo").read_bytes()
    (plain,), _ = load(tmp_path, "name: plain\nsteps: [{run: idle}]\n")
    assert install_localtime(tmp_path / "other", plain) is None and zone_env(plain) == {}


def test_the_simulator_gives_tz_to_its_programs(tmp_path: Path) -> None:
    (scenario,), _ = load(tmp_path, SCENARIO.replace("JST-9", "<-03>3"))
    target = SimTarget()
    (tmp_path / "w").mkdir()
    target.start(scenario, tmp_path / "w")
    try:
        assert (target.home / LOCALTIME_FILE).exists()
        send = target.send
        # qmail-send's dates: its TZ, not the home's localtime file (Asia/Tokyo)
        assert send.engine.date(1_700_000_000).endswith(" -0300")  # type: ignore[attr-defined]
    finally:
        target.close()


def test_patch_list() -> None:
    assert patch_list("date-localtime, qmail-103") == ("date-localtime", "qmail-103")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown patch"):
        patch_list("date-localtime,no-such")


def test_only_a_built_reference_takes_patches(tmp_path: Path) -> None:
    from harness.cli import main

    (scenario,), _ = load(tmp_path, SCENARIO)
    with pytest.raises(ValueError, match="only a qmail:DIR reference"):
        compare(scenario, "sim", reference_patches=["date-localtime"])
    args = [str(tmp_path / "s.yaml"), "--reference", "live", "--reference-patches", "qmail-103"]
    assert main(["compare", *args]) == 2


@pytest.mark.parametrize(
    ("built", "wanted", "comparable"),
    [
        (frozenset(), (), True),
        (frozenset({"date-localtime"}), ("date-localtime",), True),
        (frozenset({"date-localtime"}), (), False),  # stock dates on a patched build
        (frozenset(), ("date-localtime",), False),
        (frozenset({"date-localtime"}), ("date-localtime", "qmail-103"), False),
    ],
)
def test_a_built_reference_compares_exactly_its_patches(
    tmp_path: Path, built: frozenset[str], wanted: tuple[str, ...], comparable: bool
) -> None:
    import dataclasses

    (scenario,), _ = load(tmp_path, SCENARIO)
    target = QmailTarget(str(tmp_path))
    target.built_patches = built
    target.scenario = dataclasses.replace(scenario, patches=wanted)
    if comparable:
        target._patches()
    else:
        with pytest.raises(NotComparable, match="cannot be switched on a built qmail"):
            target._patches()


DATE_LOCALTIME_HOME = os.environ.get("QMAILSIM_NETQMAIL_DATE_LOCALTIME")


@pytest.mark.live
@pytest.mark.skipif(
    DATE_LOCALTIME_HOME is None,
    reason="set QMAILSIM_NETQMAIL_DATE_LOCALTIME=DIR to a netqmail-1.06 home built by you "
    "with qmail-date-localtime.patch (docs/conformance.md)",
)
@pytest.mark.skipif(not netns.available(), reason=f"no namespaces: {netns.why_unavailable()}")
def test_a_date_localtime_build_agrees_with_the_simulator_zone_for_zone() -> None:
    loaded, broken = load_all([bundled_suite() / "patches" / "date-localtime-zones.yaml"])
    assert not broken and len(loaded) >= 5
    for scenario in loaded:
        result = compare(
            scenario, f"qmail:{DATE_LOCALTIME_HOME}", reference_patches=["date-localtime"]
        )
        assert result.verdict == "identical", (scenario.name, result)


def test_setup_names_the_homes_localtime(tmp_path: Path) -> None:
    from harness.cli import main
    from server.date822 import home_date

    home = tmp_path / "home"
    assert main(["setup", str(home), "--one-user", "--localtime", "Asia/Kolkata"]) == 0
    assert (home / LOCALTIME_FILE).read_bytes() == zone_file("Asia/Kolkata").read_bytes()
    assert home_date(1_700_000_000, {"date-localtime"}, {}, home).endswith(" +0530")
    assert main(["setup", str(tmp_path / "h2"), "--one-user", "--localtime", "No/Such"]) == 111
