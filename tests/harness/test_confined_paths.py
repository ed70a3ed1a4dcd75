"""Paths the harness itself makes or reads stay inside a scenario's work directory.

Issue 13, "Scenario files are code": a home from ``users:`` or ``assign:``, a
file ``expect.files`` reads, a Maildir or mbox key, must not reach
``/etc/passwd`` or climb out with ``../``, unless the scenario says
``paths_outside_workdir: true``. Otherwise it is a load error naming file,
line and key. (Programs in ``.qmail`` files still run: that is what a
``.qmail`` file does, and docs/scenarios.md says a scenario is trusted like a
test file.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.runner import run_scenario
from harness.scenario import ScenarioError, load_file, load_text

OUTSIDE = [
    ("users: {u: {home: /etc}}", 2, "users.u.home"),
    ("users: {u: {home: homes/../../x}}", 2, "users.u.home"),
    ("users: {u: {mbox: ../../Mailbox}}", 2, "users.u.mbox"),
    ('assign: ["=u:u:1000:1000:/srv/u:::"]', 2, "assign[0]"),
    ('assign: ["+u-:u:1000:1000:{workdir}/../../x:-::"]', 2, "assign[0]"),
    ("assign: |\n  =u:u:1000:1000:/etc:::\n", 3, "assign"),  # the text starts below |
    (
        "steps:\n  - expect: {files: {/etc/passwd: {exists: true}}}",
        3,
        "steps[0].expect.files./etc/passwd",
    ),
    (
        "steps:\n  - expect: {files: {~alice/../../../etc/hostname: {contains: x}}}",
        3,
        "steps[0].expect.files.~alice/../../../etc/hostname",
    ),
    ("steps:\n  - expect: {files: {~../x: {exists: true}}}", 3, "steps[0].expect.files.~../x"),
    ("steps:\n  - expect: {files: {../x: {exists: true}}}", 3, "steps[0].expect.files.../x"),
    ("steps:\n  - expect: {maildir: {../elsewhere: 1}}", 3, "steps[0].expect.maildir.../elsewhere"),
    ("steps:\n  - expect: {mbox: {/var/mail/root: 1}}", 3, "steps[0].expect.mbox./var/mail/root"),
]


def _doc(text: str, opt_in: bool = False) -> str:
    head = "name: p\n" + ("paths_outside_workdir: true\n" if opt_in else "")
    return head + text + ("\n" if "steps" in text else "\nsteps: []\n")


@pytest.mark.parametrize(("text", "line", "key"), OUTSIDE)
def test_a_path_outside_the_work_directory_is_a_load_error(text: str, line: int, key: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(_doc(text), "p.yaml")
    err = info.value
    assert (err.file, err.line, err.key) == ("p.yaml", line, key), str(err)
    assert "paths_outside_workdir: true" in err.message


@pytest.mark.parametrize(("text", "line", "key"), OUTSIDE)
def test_a_scenario_may_say_it_means_it(text: str, line: int, key: str) -> None:
    [sc] = load_text(_doc(text, opt_in=True).replace("name: p\n", "name: p\n", 1), "p.yaml")
    assert sc.paths_outside_workdir


INSIDE = [
    "users: {u: {home: homes/u, mbox: Mail/box}}",
    'assign: ["=u:u:1000:1000:{workdir}/homes/u:::", "+u-:u:1000:1000:{workdir}:-::", "."]',
    "steps:\n  - expect: {files: {control/me: {exists: true}, ~alice/.qmail: {exists: false}}}",
    "steps:\n  - expect: {maildir: {alice: 0, alias: 0, homes/x/Maildir: 0}, mbox: {out/box: 0}}",
]


@pytest.mark.parametrize("text", INSIDE)
def test_paths_inside_the_work_directory_load(text: str) -> None:
    [sc] = load_text(_doc(text), "p.yaml")
    assert not sc.paths_outside_workdir


def test_false_or_a_fixture_does_not_open_the_door(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"p\.yaml:3: users\.u\.home"):
        load_text(
            "name: p\npaths_outside_workdir: false\nusers: {u: {home: /etc}}\nsteps: []\n", "p.yaml"
        )
    (tmp_path / "opens.yaml").write_text("paths_outside_workdir: true\n")
    (tmp_path / "s.yaml").write_text("name: s\ninclude: opens.yaml\nsteps: []\n")
    with pytest.raises(ScenarioError, match=r"opens\.yaml:1: paths_outside_workdir: unknown key"):
        load_file(tmp_path / "s.yaml")


def test_every_escaping_path_of_a_file_is_reported() -> None:
    text = _doc("users: {u: {home: /etc, mbox: ../x}}\nassign: ['=u:u:1:1:/root:::']")
    with pytest.raises(ScenarioError) as info:
        load_text(text, "p.yaml")
    assert {e.key for e in info.value.errors} == {"users.u.home", "users.u.mbox", "assign[0]"}


def test_an_opted_in_scenario_reads_a_file_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("hello from outside\n")
    text = (
        "name: reads outside\npaths_outside_workdir: true\nsteps:\n"
        f"  - expect: {{files: {{{outside}: {{contains: [hello from outside]}}}}}}\n"
    )
    [sc] = load_text(text, "p.yaml")
    result = run_scenario(sc, workroot=tmp_path)
    assert result.status == "pass", result.message
