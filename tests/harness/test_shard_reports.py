"""Sharding (harness.shard, ``run --shard``, pytest ``--qmail-shard``) and run's reports."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import main
from harness.outcome import Result
from harness.report import breakdown, relative_file
from harness.runner import bundled_suite, load_all
from harness.shard import Shard, parse_shard, scenario_key

ROOT = Path(__file__).resolve().parents[2]
PYTEST = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly"]


def _bundled_keys() -> list[str]:
    suite = bundled_suite()
    scenarios, errors = load_all([suite], relative_to=suite.parent)
    assert not errors
    return [scenario_key(s.file, s.name) for s in scenarios]


def test_three_shards_of_the_bundled_suite_hold_every_scenario_once() -> None:
    keys = _bundled_keys()
    shards = [parse_shard(f"{k}/3") for k in (1, 2, 3)]
    held = Counter(key for shard in shards for key in shard.pick(keys, str))
    assert set(held) == set(keys) and set(held.values()) == {1}
    assert all(shard.pick(keys, str) for shard in shards)  # none is empty


def test_the_partition_is_a_fixed_hash_not_pythons_salted_one() -> None:
    # zlib.crc32(b"scenarios/a.yaml::x") == 935496989, and 935496989 % 7 == 0
    key = "scenarios/a.yaml::x"
    expected = 1
    assert [k for k in range(1, 8) if Shard(k, 7).holds(key)] == [expected]
    code = "from harness.shard import Shard; print([k for k in range(1,8) if Shard(k,7).holds(%r)])"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code % key],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            check=True,
        )
        assert out.stdout.strip() == f"[{expected}]"


@given(st.integers(1, 50).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_parse_shard_reads_every_valid_k_over_n(pair: tuple[int, int]) -> None:
    k, n = pair
    assert parse_shard(f"{k}/{n}") == Shard(k, n)
    assert str(Shard(k, n)) == f"{k}/{n}"


@given(st.text(max_size=8))
def test_parse_shard_parses_or_raises_value_error(text: str) -> None:
    try:
        shard = parse_shard(text)
    except ValueError:
        return
    assert 1 <= shard.index <= shard.total


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "3", "/3", "1/"])
def test_parse_shard_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_shard(text)


def test_run_shards_cover_a_suite_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    for i in range(12):
        (suite / f"s{i}.yaml").write_text(f"name: scenario {i}\nsteps: []\n")
    seen: list[str] = []
    for k in (1, 2, 3):
        junit = tmp_path / f"j{k}.xml"
        code = main(["run", str(suite), "--shard", f"{k}/3", "--junit", str(junit)])
        assert code in (0, 5)
        capsys.readouterr()
        if junit.exists():
            seen += [c.get("name", "") for c in ET.parse(junit).getroot().iter("testcase")]
    assert sorted(seen) == sorted(f"scenario {i}" for i in range(12))
    with pytest.raises(SystemExit):
        main(["run", str(suite), "--shard", "4/3"])


def test_pytest_shards_cover_the_bundled_suite_once() -> None:
    collected: list[str] = []
    for k in (1, 2, 3):
        out = subprocess.run(
            [*PYTEST, "--qmail-shard", f"{k}/3", "scenarios"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        collected += [line for line in out.stdout.splitlines() if "::" in line]
    assert sorted(collected) == sorted(_bundled_keys())


def test_junit_classnames_are_relative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.yaml").write_text("name: a\nsteps: []\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(tmp_path / "mine"), "--junit", "j.xml"]) == 0
    [case] = ET.parse(tmp_path / "j.xml").getroot().iter("testcase")
    assert case.get("classname") == "mine/a.yaml"
    assert relative_file("rel/x.yaml") == "rel/x.yaml"


def test_run_ends_with_a_table_by_directory_and_tag(capsys: pytest.CaptureFixture[str]) -> None:
    results = [
        Result(id="a", name="a", file="scenarios/dns/a.yaml", status="pass", tags=("dns",)),
        Result(id="b", name="b", file="scenarios/dns/b.yaml", status="fail", tags=("dns", "mx")),
        Result(id="c", name="c", file="scenarios/pop3/c.yaml", status="pass"),
    ]
    rows = breakdown(results).splitlines()
    assert rows[0].split() == ["directory/tag", "pass", "fail", "error", "xfail", "xpass", "total"]
    assert rows[1].split() == ["scenarios/dns/", "1", "1", "0", "0", "0", "2"]
    assert rows[2].split() == ["scenarios/pop3/", "1", "0", "0", "0", "0", "1"]
    assert rows[3].split() == ["tag:dns", "1", "1", "0", "0", "0", "2"]
    assert rows[4].split() == ["tag:mx", "0", "1", "0", "0", "0", "1"]


def test_compare_junit_classnames_are_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.commands.compare import write_junit
    from harness.compare import Comparison
    from harness.scenario import Scenario

    monkeypatch.chdir(tmp_path)
    scenario = Scenario(name="n", file=str(tmp_path / "suite" / "a.yaml"), line=1)
    results = [
        Comparison(scenario=scenario, verdict="identical"),
        Comparison(scenario=scenario, verdict="differs", step="step 1", ours="x", theirs="y"),
    ]
    write_junit(results, tmp_path / "c.xml", 1.0)
    cases = list(ET.parse(tmp_path / "c.xml").getroot().iter("testcase"))
    assert [c.get("classname") for c in cases] == ["suite/a.yaml", "suite/a.yaml"]
    assert cases[1].find("failure") is not None


def test_pytest_refuses_a_bad_shard() -> None:
    out = subprocess.run(
        [*PYTEST, "--qmail-shard", "4/3", "scenarios/smtpd/greeting.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 4 and "K must be between 1 and N" in out.stderr
