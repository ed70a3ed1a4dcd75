"""The scenario loader: every error names file, line and key; valid files build models."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.scenario import Scenario, ScenarioError, load_file, load_text
from harness.scenario.model import AdvanceStep, ExpectStep, SessionStep
from harness.scenario.values import (
    format_duration,
    parse_duration,
    parse_match,
    parse_transcript,
)

GOOD = """\
name: example
tags: [a, b]
control: {me: mx.example.org, rcpthosts: [example.org, example.net], badmailfrom: null}
users:
  alice: {dotqmail: {"": ./Maildir/, "-list": "&bob@example.org"}}
peers:
  127.0.2.10: {accept: all, attempts: [{rcpt: 451 greylisted}]}
steps:
  - smtp:
      env: {TCPREMOTEIP: 10.0.0.1, RELAYCLIENT: null}
      transcript: |
        S: 220 mx.example.org ESMTP
        C: HELO x
        R: bare\\n
        S: ~ ^250
  - advance: 1h30m
  - expect:
      log: "one line"
      maildir: {alice: 2}
      bounces: 1
      dns_queries: [far.example ANY]
"""


def test_a_good_scenario_builds_the_model() -> None:
    [sc] = load_text(GOOD, "good.yaml")
    assert sc.name == "example" and sc.tags == ("a", "b")
    assert sc.control == {
        "me": "mx.example.org",
        "rcpthosts": "example.org\nexample.net\n",
        "badmailfrom": None,
    }
    assert sc.users["alice"].dotqmail == {"": "./Maildir/", "-list": "&bob@example.org"}
    peer = sc.peers["127.0.2.10"]
    assert peer.for_attempt(0).rcpt == {"*": "451 greylisted"}
    assert peer.for_attempt(1).rcpt == {"*": "250 ok"}
    smtp, advance, expect = sc.steps
    assert isinstance(smtp, SessionStep) and smtp.line == 9 and smtp.transcript_line == 12
    assert [t.who for t in smtp.transcript] == ["S", "C", "R", "S"]
    assert smtp.transcript[1].data == b"HELO x\r\n" and smtp.transcript[2].data == b"bare\n"
    assert smtp.env == {"TCPREMOTEIP": "10.0.0.1", "RELAYCLIENT": None}
    assert isinstance(advance, AdvanceStep) and advance.seconds == 5400
    assert isinstance(expect, ExpectStep)
    assert expect.maildir["alice"].count == 2 and expect.bounces is not None
    assert expect.bounces.count == 1
    assert expect.dns_queries is not None and expect.dns_queries.seen == ("far.example ANY",)


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("name: x\nsteps: []\nbogus: 1\n", 3, "bogus", "unknown key"),
        (
            "name: x\nsteps:\n  - smtp: {transcript: 'S: x', envv: {}}\n",
            3,
            "steps[0].smtp.envv",
            "unknown key",
        ),
        ("name: x\nsteps:\n  - teleport: 1\n", 3, "steps[0].teleport", "unknown step kind"),
        ("name: x\nsteps:\n  - advance: soon\n", 3, "steps[0].advance", "duration"),
        ("name: x\n", 1, "(top)", "missing required key 'steps'"),
        ("name: x\nseed: many\nsteps: []\n", 2, "seed", "integer"),
        ("name: x\nsteps:\n  - signal: kill\n", 3, "steps[0].signal", "signal"),
        ("name: x\nsteps: []\npatches: [qmail-999]\n", 3, "patches[0]", "one of"),
        ("name: x\nsteps:\n - expect:\n     log: [a: b]\n", 4, "steps[0].expect.log[0]", "quoted"),
        (
            "name: x\nsteps:\n  - smtp:\n      transcript: |\n        S: 220\n        X: what\n",
            6,
            "steps[0].smtp.transcript",
            "S:, C: or R:",
        ),
        ("name: x\ndns: {zone: 'not a zone ((('}\nsteps: []\n", 2, "dns.zone", "zone"),
        ("name: [unclosed\n", 1, "", "YAML syntax"),
        ("name: x\nname: y\nsteps: []\n", 2, "name", "duplicate key"),
        ("name: x\nsteps: []\ncontrol: {../me: x}\n", 3, "control.../me", "path component"),
        ("name: x\nsteps: []\nusers: {../u: {}}\n", 3, "users.../u", "path component"),
        ("name: x\nsteps: []\nusers: {u: {home: /etc}}\n", 3, "users.u.home", "outside"),
    ],
)
def test_errors_name_file_line_and_key(text: str, line: int, key: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(text, "bad.yaml")
    err = info.value
    assert (err.file, err.line, err.key) == ("bad.yaml", line, key), str(err)
    assert words in str(err)
    assert str(err).startswith(f"bad.yaml:{line}: ")


def test_includes_merge_mappings_and_append_lists(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "control: {me: a.example, locals: [a.example]}\ntags: [base]\nusers: {bob: {}}\n"
    )
    (tmp_path / "s.yaml").write_text(
        "include: base.yaml\nname: s\ntags: [own]\ncontrol: {locals: [b.example]}\n"
        "users: {carol: {}}\nsteps: []\n"
    )
    [sc] = load_file(tmp_path / "s.yaml")
    assert sc.control == {"me": "a.example", "locals": "b.example\n"}
    assert sc.tags == ("base", "own") and set(sc.users) == {"bob", "carol"}


def test_a_missing_or_broken_include_is_reported_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: s\nsteps: []\ninclude: nothere.yaml\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:3: include: no such fixture"):
        load_file(tmp_path / "s.yaml")
    (tmp_path / "bad.yaml").write_text("control: {me: [1, [2]]}\n")
    (tmp_path / "t.yaml").write_text("name: t\nsteps: []\ninclude: bad.yaml\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml:1: control.me"):
        load_file(tmp_path / "t.yaml")


def test_a_file_may_hold_a_list_or_several_documents() -> None:
    two = load_text("- {name: a, steps: []}\n- {name: b, steps: []}\n")
    docs = load_text("name: a\nsteps: []\n---\nname: b\nsteps: []\n")
    assert [s.name for s in two] == [s.name for s in docs] == ["a", "b"]


def test_the_bundled_fixture_loads() -> None:
    for path in sorted(Path(__file__).resolve().parents[2].joinpath("scenarios").rglob("*.yaml")):
        assert load_file(path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("2h", 7200),
        ("8d", 691200),
        ("1h30m", 5400),
        ("42", 42),
        ("1w", 604800),
        ("0.5s", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5x", "1h 30m", "-1s", "1hh"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@settings(deadline=None)  # a busy CI machine is slow, not wrong
@given(st.integers(min_value=0, max_value=10**8))
def test_duration_format_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_matches() -> None:
    assert parse_match("~ ^250 ok \\d+").search("250 ok 12 qp 3")
    assert not parse_match("250 ok").regex
    with pytest.raises(ValueError, match="regular expression"):
        parse_match("~ (")


@settings(deadline=None)  # a busy CI machine is slow, not wrong
@given(st.text(alphabet="SCR: ~\\\nx(", max_size=80))
def test_transcript_parser_parses_or_says_why(text: str) -> None:
    try:
        lines = parse_transcript(text)
    except ValueError as exc:
        assert "transcript line" in str(exc)
        return
    assert all(line.who in "SCR" for line in lines)


_SCALARS = st.sampled_from(
    [
        "x",
        "1",
        "true",
        "null",
        "~",
        "'q: x'",
        "8d",
        "[",
        "{",
        "-",
        "|",
        "*a",
        "&a b",
        "S: 1",
        "'",
        '"',
        "\t",
        ":",
        "? x",
        "%",
        "!!int x",
    ]
)
_KEYS = st.sampled_from(
    [
        "name",
        "steps",
        "tags",
        "control",
        "me",
        "smtp",
        "transcript",
        "expect",
        "queue",
        "users",
        "dns",
        "rules",
        "peers",
        "seed",
        "advance",
        "include",
        "zz",
        "log",
        "run",
        "signal",
    ]
)


@st.composite
def yamlish(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        indent = " " * draw(st.sampled_from([0, 2, 4, 6]))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            lines.append(f"{indent}{draw(_KEYS)}: {draw(_SCALARS)}")
        elif kind == 1:
            lines.append(f"{indent}{draw(_KEYS)}:")
        elif kind == 2:
            lines.append(f"{indent}- {draw(_SCALARS)}")
        else:
            lines.append(f"{indent}- {draw(_KEYS)}: {draw(_SCALARS)}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n---\n", "\x00"]))


@settings(max_examples=150, deadline=None)
@given(st.one_of(yamlish(), st.text(max_size=60)))
def test_any_document_gives_scenarios_or_a_located_error(text: str) -> None:
    _scenarios_or_located_error(text)


def _scenarios_or_located_error(text: str) -> None:
    try:
        scenarios = load_text(text, "fuzz.yaml")
    except ScenarioError as exc:
        assert exc.file == "fuzz.yaml" and exc.line >= 1
        assert str(exc).startswith(f"fuzz.yaml:{exc.line}:")
        return
    assert all(isinstance(s, Scenario) for s in scenarios)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The good scenario with lines dropped, repeated, re-indented or re-valued."""
    lines = GOOD.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.integers(0, 3))
        if how == 0:
            del lines[i]
        elif how == 1:
            lines.insert(i, lines[i])
        elif how == 2:
            lines[i] = " " * draw(st.sampled_from([0, 1, 2, 4, 8])) + lines[i].lstrip()
        else:
            key, sep, _ = lines[i].partition(":")
            lines[i] = key + (sep or ":") + " " + draw(_SCALARS)
        if not lines:
            break
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None)
@given(mutated())
def test_a_damaged_scenario_gives_a_scenario_or_a_located_error(text: str) -> None:
    _scenarios_or_located_error(text)
