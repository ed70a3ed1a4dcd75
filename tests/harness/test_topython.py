"""harness.topython and ``qmail-sim show --python``: a scenario as Python, and back."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.api import StepFailed
from harness.cli import main
from harness.runner import bundled_suite, load_all
from harness.scenario import load_text
from harness.scenario.values import Match, TranscriptLine, parse_transcript
from harness.topython import format_transcript, plain, to_python

SCENARIO = """\
name: two messages, one expectation
control: {me: mx.example.org, rcpthosts: [example.org], locals: [example.org]}
users: {alice: {password: pw, modes: {Maildir/tmp: "0700"}}}
steps:
  - smtp:
      env: {RELAYCLIENT: ""}
      transcript: |
        S: 220 mx.example.org ESMTP
        C: HELO c
        S: 250 mx.example.org
        C: MAIL FROM:<a@b.example>
        S: 250 ok
        C: RCPT TO:<alice@example.org>
        S: 250 ok
        C: DATA
        S: 354 go ahead
        R: Subject: x\\r\\n\\r\\nbody\\r\\n.\\r\\n
        S: ~ ^250 ok \\d+ qp \\d+$
        C: QUIT
        S: 221 mx.example.org
  - run: idle
  - advance: 2h
  - expect:
      queue: {messages: %d}
      maildir: {alice: {count: 1, headers: {Subject: x}}}
"""


def _run(code: str) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(code, "<generated>", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_")]
    assert tests
    for test in tests:
        test()


def test_a_generated_test_passes_and_fails_as_its_scenario() -> None:
    _run(to_python(load_text(SCENARIO % 0)))
    with pytest.raises(StepFailed, match="queue"):
        _run(to_python(load_text(SCENARIO % 3)))


def test_the_bundled_suite_runs_the_same_as_python() -> None:
    suite = bundled_suite()
    scenarios, errors = load_all([suite], relative_to=suite.parent)
    assert not errors
    failed = []
    for scenario in scenarios:
        try:
            _run(to_python([scenario]))
        except Exception as exc:
            if scenario.xfail is None:
                failed.append(f"{scenario.id}: {exc}")
        else:
            if scenario.xfail is not None:
                failed.append(f"{scenario.id}: passed, but is marked xfail")
    assert failed == []


def test_plain_writes_the_scenario_format() -> None:
    assert plain(Match(text="^2", regex=True)) == "~ ^2"
    scenario = load_text(SCENARIO % 0)[0]
    user = plain(scenario.users["alice"])
    assert user == {"name": "alice", "password": "pw", "modes": {"Maildir/tmp": 0o700}}
    assert "~ ^250 ok" in to_python([scenario])


def test_names_stay_distinct_and_xfail_is_kept() -> None:
    scenario = load_text(SCENARIO % 0)[0]
    twin = dataclasses.replace(scenario, xfail="known")
    code = to_python([scenario, twin])
    assert "def test_two_messages_one_expectation() -> None:" in code
    assert "def test_two_messages_one_expectation_() -> None:" in code
    assert "@pytest.mark.xfail(reason='known', strict=True)" in code
    compile(code, "<generated>", "exec")


_S = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).filter(
    lambda t: not t.startswith("~") and t.strip() == t and "#" not in t[:1]
)
_C = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
_LINES = st.lists(
    st.one_of(
        _S.filter(bool).map(lambda t: TranscriptLine(who="S", expect=Match(text=t))),
        _C.filter(lambda t: t.strip() == t).map(
            lambda t: TranscriptLine(who="C", data=t.encode() + b"\r\n")
        ),
        st.binary(min_size=1, max_size=20).map(lambda b: TranscriptLine(who="R", data=b)),
    ),
    max_size=8,
)


@given(_LINES)
def test_format_transcript_is_parse_transcripts_inverse(lines: list[TranscriptLine]) -> None:
    again = parse_transcript(format_transcript(tuple(lines)))
    assert [dataclasses.replace(x, offset=0) for x in again] == lines


def test_show_python_prints_a_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "s.yaml"
    file.write_text(SCENARIO % 0)
    assert main(["show", "--python", str(file)]) == 0
    code = capsys.readouterr().out
    assert code.startswith('"""From ') and "from harness.api import QmailSim" in code
    _run(code)
