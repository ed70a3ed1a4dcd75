"""``qmail-sim run`` for a careless user and for CI (issue 13, command line 12-14, debugging).

Nothing selected is an exit status, not a green run; a broken file shows every
mistake once, at the line to fix; a NUL byte is a load error, not a crash;
``--keep`` keeps what a reader needs; JUnit names the files as given.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.runner import KEPT_DNS, KEPT_LOG
from harness.scenario import ScenarioError, load_text

PASSING = (
    "name: greets\ntags: [smtp]\ncontrol: {me: mx.example.org}\nsteps:\n  - smtp:\n"
    "      transcript: |\n        S: 220 mx.example.org ESMTP\n        C: QUIT\n"
    "        S: 221 mx.example.org\n"
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- 12: zero scenarios selected -------------------------------------------------------


def test_an_empty_directory_is_exit_5_with_a_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, str(tmp_path))
    assert code == 5
    assert err.strip() == f"qmail-sim run: no scenarios found in {tmp_path}"


@pytest.mark.parametrize("select", [["-k", "nosuchword"], ["--tag", "nosuchtag"]])
def test_a_selection_matching_nothing_is_exit_5(
    select: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text(PASSING)
    code, _, err = _run(capsys, str(tmp_path), *select)
    assert code == 5 and "no scenarios matched -k/--tag" in err


def test_one_scenario_is_one_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(PASSING)
    code, out, _ = _run(capsys, str(tmp_path))
    assert code == 0 and "\n1 scenario: 1 pass in " in out


# -- 13: YAML errors: the right line, all of them, the place once -------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: [unclosed\n", 1),  # the bracket's line, not the end of the file
        ("name: x\nsteps:\n  - smtp: {transcript: 'S: x'\n  - run: idle\n", 3),
        ("name: x\nsteps: []\nbogus\ntags: [a]\n", 3),  # a key without its ':'
        ("name: 'x\nsteps: []\n", 1),  # a quote never closed
        ("name: x\nsteps:\n  - run: idle\n - advance: 1h\n", 4),  # found where it is
        ("name: x\nsteps:\n\t- run: idle\n", 3),
    ],
)
def test_a_yaml_error_names_the_line_at_fault(text: str, line: int) -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(text, "bad.yaml")
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"bad.yaml:{line}: YAML syntax: ")


BROKEN_THREE_WAYS = """\
name: x
seed: many
steps:
  - advance: 1h
  - signal: kill
bogus: 1
"""


def test_every_error_of_a_file_is_shown_in_line_order() -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(BROKEN_THREE_WAYS, "bad.yaml")
    lines = str(info.value).splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        ["bad.yaml:2", "seed"],
        ["bad.yaml:5", "steps[1].signal"],
        ["bad.yaml:6", "bogus"],
    ]
    assert info.value.line == 2 and len(info.value.errors) == 3


def test_errors_in_several_scenarios_of_one_file_are_all_shown() -> None:
    text = "- name: a\n  steps: [{advance: soon}]\n- name: b\n  steps: []\n  bogus: 2\n"
    with pytest.raises(ScenarioError) as info:
        load_text(text, "two.yaml")
    assert [(e.line, e.key) for e in info.value.errors] == [
        (2, "steps[0].advance"),
        (5, "bogus"),
    ]


def test_run_prints_each_error_once_with_its_place_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "unknown.yaml").write_text(BROKEN_THREE_WAYS)
    code, out, _ = _run(capsys, str(tmp_path / "unknown.yaml"))
    assert code == 1
    lines = out.splitlines()
    where = f"{tmp_path}/unknown.yaml"
    assert lines[0].startswith(f"ERROR {where}::(load)")
    assert lines[1] == f"    {where}:2: seed: expected an integer, got 'many'"
    assert lines[2].startswith(f"    {where}:5: steps[1].signal: ")
    assert lines[3].startswith(f"    {where}:6: bogus: unknown key")
    assert "at line" not in out and out.count(f"{where}:2:") == 1
    assert lines[4].startswith("directory/tag ")  # harness.report.breakdown
    assert lines[-1].startswith("1 scenario: 1 error in ")


# -- 14: a NUL byte in a file-name key --------------------------------------------------------

NUL_DOTQMAIL = """\
name: nul
include: base-control.yaml
users:
  carol:
    dotqmail: {"-a\\0b": ./Maildir/}
steps: []
"""


def test_a_nul_byte_in_a_dotqmail_key_is_a_load_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(NUL_DOTQMAIL, "nul.yaml")
    assert (
        str(info.value) == "nul.yaml:5: users.carol.dotqmail.-a\\0b: a key cannot hold a NUL byte"
    )
    (tmp_path / "nul.yaml").write_text(NUL_DOTQMAIL)
    code, out, _ = _run(capsys, str(tmp_path / "nul.yaml"))
    assert code == 1 and "embedded null byte" not in out and "NUL byte" in out


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('aliases: {"x\\0": "&a@b"}', "aliases.x\\0"),
        ('control: {"me\\0": x}', "control.me\\0"),
        ('users: {"u\\0": {}}', "users.u\\0"),
        ('steps:\n  - expect: {files: {"a\\0": {exists: true}}}', "steps[0].expect.files.a\\0"),
    ],
)
def test_a_nul_byte_in_any_key_is_a_load_error(text: str, key: str) -> None:
    doc = f"name: nul\n{text}\n" + ("" if "steps" in text else "steps: []\n")
    with pytest.raises(ScenarioError) as info:
        load_text(doc, "nul.yaml")
    assert info.value.key == key and "NUL byte" in info.value.message


def test_a_nul_byte_in_a_home_or_mbox_path_is_a_load_error() -> None:
    for user in ('{home: "h\\0"}', '{mbox: "M\\0"}'):
        wanted = r"nul\.yaml:2: users\.u\.(home|mbox): a path cannot hold a NUL"
        with pytest.raises(ScenarioError, match=wanted):
            load_text(f"name: nul\nusers: {{u: {user}}}\nsteps: []\n", "nul.yaml")


# -- debugging after a failure ----------------------------------------------------------------

DNS_AND_LOG = """\
name: relayed to far.example
include: [base-control.yaml, far-mx.yaml]
steps:
  - inject:
      args: [dave@far.example]
      env: {QMAILUSER: alice, QMAILHOST: example.org}
      message: "Subject: out\\n\\nbody\\n"
  - run: idle
  - expect: {queue: {messages: 5}}
"""


def test_keep_writes_the_send_log_and_the_dns_questions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "s.yaml").write_text(DNS_AND_LOG)
    code, out, _ = _run(capsys, str(tmp_path / "s.yaml"), "--keep")
    assert code == 1  # the failing expectation: the files are for exactly this
    [kept] = [Path(line.split("kept: ", 1)[1]) for line in out.splitlines() if "kept: " in line]
    try:
        log = (kept / KEPT_LOG).read_text().splitlines()
        dns = (kept / KEPT_DNS).read_text().splitlines()
        assert "new msg 100001" in log and any(line.startswith("end msg ") for line in log)
        assert dns[0].startswith("far.example ANY udp @")
        assert (kept / "qmail" / "queue").is_dir()
    finally:
        shutil.rmtree(kept)


MBOX_FROM = """\
name: wrong From_ day
include: base-control.yaml
users:
  bob: {mbox: Mailbox, dotqmail: {"": ./Mailbox}}
steps:
  - inject:
      args: [bob@example.org]
      env: {QMAILUSER: alice, QMAILHOST: example.org}
      message: "Subject: x\\n\\nhi\\n"
  - run: idle
  - expect:
      mbox: {bob: {from_line: "~ ^From alice@example.org ... ... [ 1-3]"}}
"""


def test_a_failed_mbox_check_shows_the_actual_from_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "s.yaml").write_text(MBOX_FROM)
    code, out, _ = _run(capsys, str(tmp_path / "s.yaml"), "--clock-start", "2026-12-01T09:00:00Z")
    assert code == 1
    assert "Mailbox (From alice@example.org Tue Dec 01 09:00:00 2026)" in out


def test_junit_names_the_bundled_suite_as_scenarios_not_an_installed_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "j.xml"
    code, out, _ = _run(capsys, "-k", "inject-local", "--junit", str(junit))
    assert code == 0
    classes = {c.get("classname") for c in ET.parse(junit).getroot().iter("testcase")}
    assert classes == {"scenarios/harness/inject-local.yaml"}
    assert "PASS  scenarios/harness/inject-local.yaml::" in out


def test_junit_names_files_as_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.yaml").write_text(PASSING)
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "mine", "--junit", "j.xml")[0] == 0
    [case] = ET.parse(tmp_path / "j.xml").getroot().iter("testcase")
    assert case.get("classname") == "mine/a.yaml"
