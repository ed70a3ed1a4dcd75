"""pytest plugin: scenario files are test items, so ``pytest scenarios/`` and ``-n 2`` work.

Collected: ``*.yaml``/``*.yml`` files inside a directory named ``scenarios``
(so fixtures and other YAML are left alone), one item per scenario. A file that
does not load becomes one failing item whose message names file, line and key.
Tags are added as keywords, so ``-k dns`` selects by tag too. A scenario with
``xfail:`` is reported as xfail/xpass. ``--qmail-sim-keep`` keeps work
directories; ``--qmail-sim-clock-start WHEN`` starts every scenario's clock at
WHEN (as ``qmail-sim run --clock-start``). ``--qmail-shard K/N`` keeps one
shard of the collected items (harness.shard: by node id, the same on every
machine). Imports of the harness happen lazily: other test suites in the same
environment pay nothing for this plugin.

Fixtures for tests of one's own (docs/python.md): ``qmail_sim`` is a
:class:`harness.api.QmailSim`, ``qmail_server`` a :class:`harness.api.QmailServer`,
each new for every test and closed after it, configured by the marker
``@pytest.mark.qmail(me=..., patches=[...], controls={...}, seed=N)``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.api import QmailServer, QmailSim
    from harness.outcome import Result
    from harness.scenario import Scenario


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qmail-sim")
    group.addoption(
        "--qmail-sim-keep", action="store_true", help="keep each scenario's work directory"
    )
    group.addoption("--qmail-sim-seed", type=int, default=None, help="override scenario seeds")
    group.addoption(
        "--qmail-sim-clock-start",
        type=_instant,
        default=None,
        metavar="WHEN",
        help="start each scenario's clock at WHEN (ISO 8601 with a zone, or epoch seconds)",
    )
    group.addoption(
        "--qmail-shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="run only shard K of N (a stable hash of each test's id; 1/N..N/N cover all once)",
    )


def _shard(text: str) -> Any:
    import argparse

    from harness.shard import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instant(text: str) -> float:
    import argparse

    from harness.scenario.values import parse_instant

    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


MARKER = (
    "qmail(me=..., patches=[...], controls={...}, seed=N): configure the qmail_sim and "
    "qmail_server fixtures (harness.api)"
)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    # pytest-benchmark, when installed, warns that xdist disables it; with
    # ``filterwarnings = error`` that warning would abort ``pytest -n 2``.
    if importlib.util.find_spec("pytest_benchmark") is None:
        return
    config.addinivalue_line(
        "filterwarnings", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("qmail_shard", None)
    if shard is None:
        return
    kept = [item for item in items if shard.holds(item.nodeid)]
    dropped = [item for item in items if not shard.holds(item.nodeid)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def _configured(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("qmail")
    if marker is None:
        return {}
    if marker.args:
        raise pytest.UsageError("@pytest.mark.qmail takes keyword arguments only")
    return dict(marker.kwargs)


@pytest.fixture
def qmail_sim(request: pytest.FixtureRequest) -> Iterator[QmailSim]:
    """A simulator home on a virtual clock (harness.api.QmailSim), new for each test."""
    from harness.api import QmailSim

    with QmailSim(**_configured(request)) as sim:
        yield sim


@pytest.fixture
def qmail_server(request: pytest.FixtureRequest) -> Iterator[QmailServer]:
    """The home served on loopback (harness.api.QmailServer); stopped after the test."""
    from harness.api import QmailServer

    with QmailServer(**_configured(request)) as server:
        yield server


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    parts = file_path.parts[:-1]
    # harness/data/scenarios is the installed copy of scenarios/ (a symlink in a checkout)
    installed_copy = any(parts[i : i + 2] == ("harness", "data") for i in range(len(parts)))
    if file_path.suffix in (".yaml", ".yml") and "scenarios" in parts and not installed_copy:
        collector: pytest.Collector = ScenarioFile.from_parent(parent, path=file_path)
        return collector
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from harness.scenario import ScenarioError, load_file

        try:
            scenarios = load_file(self.path)
        except ScenarioError as exc:
            yield BrokenScenario.from_parent(self, name="(load)", error=str(exc))
            return
        for scenario in scenarios:
            item = ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)
            for tag in scenario.tags:
                item.extra_keyword_matches.add(tag)
            yield item


class ScenarioFailed(Exception):
    pass


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario

    def runtest(self) -> None:
        from harness.runner import run_scenario

        result = run_scenario(
            self.scenario,
            keep=self.config.getoption("qmail_sim_keep"),
            seed=self.config.getoption("qmail_sim_seed"),
            clock_start=self.config.getoption("qmail_sim_clock_start"),
        )
        if result.status == "xfail":
            pytest.xfail(result.message)
        if not result.ok:
            raise ScenarioFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            from harness.report import details, result_line

            result: Result = excinfo.value.args[0]
            return "\n".join([result_line(result), *details(result)])
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.line - 1, f"scenario: {self.scenario.name}"


class BrokenScenario(pytest.Item):
    def __init__(self, *, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise ScenarioFailed(self.error)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"broken scenario file: {self.error}"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, "broken scenario file"
