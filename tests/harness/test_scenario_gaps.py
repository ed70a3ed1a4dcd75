"""The keys a scenario writer lacked: run_program, inject output checks, seeded
Maildir messages, peer checks over every session, log_unordered, and the
report of a mailbox check that no message meets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.expect import _any_order, _mailbox
from harness.mailboxes import Delivered, dated_on_purpose
from harness.maildirseed import DEFAULT_FIRST_DATE, seed_maildir
from harness.scenario import ScenarioError, load_text
from harness.scenario.model import InjectStep, MailboxExpect, MaildirMessage, ProgramStep
from harness.scenario.values import parse_match
from harness.steps.output import NO_NEWLINE, output_lines

HEAD = "name: x\n"


def one(text: str) -> object:
    return load_text(HEAD + text, Path("s.yaml"))[0]


def test_run_program_forms() -> None:
    sc = one("steps:\n  - run_program: [qmail-newmrh]\n  - run_program: qmail-tcpto -v\n")
    assert sc.steps == (  # type: ignore[attr-defined]
        ProgramStep(args=("qmail-newmrh",), line=3),
        ProgramStep(args=("qmail-tcpto", "-v"), line=4),
    )
    sc = one(
        "steps:\n  - run_program: {args: [qmail-newu], exit: 111, stdin: x,"
        " stdout: ['~ ^a'], stderr: [b], env: {A: '{workdir}'}}\n"
    )
    step = sc.steps[0]  # type: ignore[attr-defined]
    assert isinstance(step, ProgramStep)
    assert step.exit == 111 and step.stdin == "x" and step.env == {"A": "{workdir}"}
    assert step.stdout == (parse_match("~ ^a"),) and step.stderr == (parse_match("b"),)


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        ("  - run_program: [rm, -rf]\n", "'rm' is not a program of a qmail home's bin/"),
        ("  - run_program: []\n", "needs the program's name"),
        ("  - run_program: {stdout: []}\n", "args"),
    ],
)
def test_run_program_errors(steps: str, words: str) -> None:
    with pytest.raises(ScenarioError, match=r"s\.yaml:3: steps\[0\]\.run_program") as info:
        one("steps:\n" + steps)
    assert words in str(info.value)


def test_inject_output_keys() -> None:
    sc = one("steps:\n  - inject: {args: -n, message: m, stdout: [a, '~ b'], stderr: []}\n")
    step = sc.steps[0]  # type: ignore[attr-defined]
    assert isinstance(step, InjectStep)
    assert step.stdout == (parse_match("a"), parse_match("~ b")) and step.stderr == ()


def test_user_messages_and_peer_keys() -> None:
    sc = one(
        "users:\n  alice:\n    messages:\n"
        "      - {text: hi, name: a.b, flags: RS, date: 2001-09-09T01:46:40Z}\n"
        "      - {text: yo, date: 5}\n"
        "peers:\n  127.0.2.10: {rcpt: ['250-a', '250 b']}\n"
        "steps:\n  - expect: {peers: {127.0.2.10: {helo: '~ ^h', mail_from: a@b}}}\n"
    )
    user = sc.users["alice"]  # type: ignore[attr-defined]
    assert user.messages == (
        MaildirMessage(text="hi", name="a.b", flags="RS", date=1_000_000_000.0),
        MaildirMessage(text="yo", date=5.0),
    )
    assert sc.peers["127.0.2.10"].script.rcpt == {"*": "250-a\n250 b"}  # type: ignore[attr-defined]
    assert sc.steps[0].peers["127.0.2.10"].helo == parse_match("~ ^h")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("{text: hi, flags: 'S,'}", "Maildir flags are letters"),
        ("{text: hi, name: ../x}", "one plain path component"),
        ("{text: hi, date: yesterday}", "not an instant"),
        ("{name: x}", "text"),
    ],
)
def test_user_message_errors(message: str, words: str) -> None:
    with pytest.raises(ScenarioError, match=r"users\.alice\.messages\[0\]") as info:
        one(f"users: {{alice: {{messages: [{message}]}}}}\nsteps: []\n")
    assert words in str(info.value)


def test_seed_maildir_names_flags_and_dates(tmp_path: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (tmp_path / sub).mkdir()
    written = seed_maildir(
        tmp_path,
        [
            MaildirMessage(text="a\n", name="one", flags="S", date=2000.0),
            MaildirMessage(text="b\n"),
            MaildirMessage(text="c\n", flags=""),
        ],
    )
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "cur/one:2,S",
        f"new/{DEFAULT_FIRST_DATE + 1}.2.seed",
        f"cur/{DEFAULT_FIRST_DATE + 2}.3.seed:2,",
    ]
    assert [p.stat().st_mtime for p in written] == [
        2000.0,
        DEFAULT_FIRST_DATE + 1.0,
        DEFAULT_FIRST_DATE + 2.0,
    ]
    assert all(dated_on_purpose(str(p)) for p in written)
    fresh = tmp_path / "new" / "fresh"
    fresh.write_text("x")
    assert not dated_on_purpose(str(fresh))
    os.utime(fresh, (fresh.stat().st_ctime + 3600,) * 2)  # a date in the future is one too
    assert dated_on_purpose(str(fresh))


def test_log_unordered_needs_a_line_for_each() -> None:
    log = ["end msg 2", "x", "end msg 1"]
    problems: list[tuple[str, str]] = []
    _any_order([parse_match("end msg 1"), parse_match("~ ^end msg")], log, problems)
    assert problems == []
    _any_order([parse_match("end msg")] * 3, log, problems)
    assert problems == [
        ("log: end msg (any order)", "log: no such line left unmatched (see below)")
    ]


def test_mailbox_failure_names_the_checks_each_message_fails() -> None:
    got = [
        Delivered(filename="new/1", raw=b"Subject: hi\n\nhello\n"),
        Delivered(filename="new/2", raw=b"Subject: other\n\nbye\n"),
    ]
    want = MailboxExpect(headers={"Subject": parse_match("hi")}, body_contains=("bye",))
    problems: list[tuple[str, str]] = []
    _mailbox("maildir alice", want, got, problems)
    assert problems[0][1] == (
        "maildir alice: new/1: From - To - Subject hi [fails body contains 'bye']; "
        "new/2: From - To - Subject other [fails Subject: hi]"
    )


@given(st.binary(max_size=80))
def test_output_lines_round_trip(data: bytes) -> None:
    lines = output_lines(data)
    text = "".join(line.removesuffix(NO_NEWLINE) + "\n" for line in lines)
    if lines and lines[-1].endswith(NO_NEWLINE):
        text = text[:-1]
    assert text == data.decode("latin-1")
    assert all("\n" not in line for line in lines)


@given(st.text(max_size=12))
def test_flags_parse_or_refuse(text: str) -> None:
    try:
        sc = one(f"users: {{alice: {{messages: [{{text: x, flags: {text!r}}}]}}}}\nsteps: []\n")
    except ScenarioError:
        return
    flags = sc.users["alice"].messages[0].flags  # type: ignore[attr-defined]
    assert flags is not None and flags.isascii() and (flags.isalpha() or flags == "")
