"""harness.api.QmailSim, method by method, and the qmail_sim fixture and marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.api import ApiError, QmailSim, StepFailed, as_email, load_scenarios, run_scenarios
from harness.runner import bundled_suite
from harness.scenario import ScenarioError
from harness.targets.base import LimitExceeded

MESSAGE = "From: alice@example.org\nSubject: hi\n\nhello\n"
FAR_MX = "far.example. 300 IN MX 10 mx.far.example.\nmx.far.example. 300 IN A 127.0.2.10"


def test_send_delivers_to_a_maildir_as_an_email_message() -> None:
    with QmailSim(me="example.org") as sim:
        sim.user("alice")
        replies = sim.send("bob@client.example", ["alice@example.org"], MESSAGE)
        assert replies[0] == "220 example.org ESMTP"
        assert replies[-2].startswith("250 ok ")
        assert len(sim.queue()) == 1
        sim.run()
        [message] = sim.maildir("alice")
        assert message["Subject"] == "hi"
        assert message["Delivered-To"] == "alice@example.org"
        [file] = sim.maildir_files("alice")
        assert file.filename.startswith("new/")
        assert sim.queue() == []


def test_send_dot_stuffs_a_line_that_starts_with_a_dot() -> None:
    with QmailSim() as sim:
        sim.user("alice")
        sim.send("b@c.example", ["alice@example.org"], "Subject: x\n\n.hidden\n..two\n")
        sim.run()
        assert sim.maildir("alice")[0].get_content() == ".hidden\n..two\n"


def test_smtp_checks_the_transcript_and_returns_the_lines() -> None:
    with QmailSim(me="mx.example.org") as sim:
        lines = sim.smtp("S: 220 mx.example.org ESMTP\nC: QUIT\nS: ~ ^221 ")
        assert lines == ["220 mx.example.org ESMTP", "221 mx.example.org"]
        with pytest.raises(StepFailed, match="expected 'wrong'"):
            sim.smtp("S: wrong\nC: QUIT\nS: 221 mx.example.org")


def test_controls_before_and_after_the_start() -> None:
    with QmailSim(controls={"rcpthosts": ["example.org", "example.net"]}) as sim:
        assert (sim.home / "control" / "rcpthosts").read_text() == "example.org\nexample.net\n"
        sim.control("databytes", "10")
        assert (sim.home / "control" / "databytes").read_text() == "10\n"
        sim.control("databytes", None)
        assert not (sim.home / "control" / "databytes").exists()
        with pytest.raises(ApiError, match="before its first action"):
            sim.user("late")


def test_dotqmail_forwards_and_an_mbox_is_read_back() -> None:
    with QmailSim() as sim:
        sim.user("alice", dotqmail={"": "&bob@example.org"}).user("bob", mbox="Mailbox")
        sim.dotqmail("bob", "", "./Mailbox")
        sim.inject(MESSAGE, "alice@example.org")
        sim.run()
        [message] = sim.mbox("bob")
        assert message["Subject"] == "hi"
        assert sim.maildir("alice") == []


def test_a_dotqmail_written_after_the_start_is_used() -> None:
    with QmailSim() as sim:
        sim.user("alice").user("bob").start()
        sim.dotqmail("alice", "-news", "&bob@example.org")
        sim.inject(MESSAGE, "alice-news@example.org")
        sim.run()
        assert len(sim.maildir("bob")) == 1


def test_assign_and_alias() -> None:
    with QmailSim() as sim:
        sim.user("alice")
        sim.alias("postmaster", "&alice@example.org")
        sim.inject(MESSAGE, "postmaster@example.org")
        sim.run()
        assert sim.maildir("alice")[0]["Delivered-To"] == "alice@example.org"
    with QmailSim() as sim:
        sim.user("carol", home="homes/carol")
        # qmail-lspawn never delivers as uid 0: an ordinary uid
        sim.assign(["=info:carol:1000:1000:{workdir}/homes/carol:::"])
        sim.inject(MESSAGE, "info@example.org")
        sim.run()
        assert len(sim.maildir("carol")) == 1


def test_peer_dns_questions_and_next_retry() -> None:
    with QmailSim() as sim:
        sim.user("alice").dns_zone(FAR_MX).peer("127.0.2.10", rcpt={"*": "451 busy"})
        sim.inject(MESSAGE, "-f", "alice@example.org", "bob@far.example")
        sim.run()
        [session] = sim.peer_sessions("127.0.2.10")
        assert session.rejected == ["bob@far.example"]
        assert any(q.matches("far.example ANY") for q in sim.dns_queries())
        retry = sim.next_retry()
        assert retry is not None and retry > sim.now
        sim.advance(retry - sim.now)
        assert len(sim.peer_sessions("127.0.2.10")) == 2


def test_a_bounce_and_the_signal() -> None:
    with QmailSim() as sim:
        sim.user("alice").dns_zone(FAR_MX).peer("127.0.2.10", rcpt={"*": "550 no such user"})
        sim.inject(MESSAGE, "-f", "alice@example.org", "bob@far.example")
        sim.signal("alrm").run()
        [bounce] = sim.bounces()
        assert bounce["To"] == "alice@example.org"
        assert "550 no such user" in bounce.get_content()


def test_pop3_reads_the_maildir() -> None:
    with QmailSim(me="example.org") as sim:
        sim.user("alice", password="secret")
        sim.inject(MESSAGE, "alice@example.org")
        sim.run().advance(1)  # qmail-pop3d lists only mail older than now
        lines = sim.pop3(
            "S: ~ ^\\+OK <\nC: USER alice\nS: +OK \nC: PASS secret\nS: +OK \n"
            "C: STAT\nS: ~ ^\\+OK 1 \\d+$\nC: QUIT\nS: +OK "
        )
        assert lines[3].startswith("+OK 1 ")


def test_patches_reach_the_home() -> None:
    with QmailSim(patches=["qmail-103"]) as sim:
        assert sim.scenario().patches == ("qmail-103",)
        assert "qmail-103" in sim.target.ctx.patches


def test_unknown_user_and_a_bad_configuration_say_so() -> None:
    with QmailSim() as sim, pytest.raises(ApiError, match="no user 'nobody'"):
        sim.maildir("nobody")
    sim = QmailSim()
    sim.dns_rule("x.example", rcode="NOPE")
    with pytest.raises(ScenarioError, match="rcode"):
        sim.start()


def test_close_removes_the_work_directory_unless_kept(tmp_path: Path) -> None:
    sim = QmailSim(workroot=tmp_path).start()
    assert sim.workdir is not None and sim.workdir.is_dir()
    sim.close()
    assert not sim.workdir.exists()
    with pytest.raises(ApiError, match="closed"):
        sim.queue()
    with QmailSim(workroot=tmp_path, keep=True) as kept:
        kept.start()
    assert kept.workdir is not None and kept.workdir.is_dir()


def test_a_scenario_file_loads_plays_and_runs() -> None:
    file = bundled_suite() / "smtpd" / "greeting.yaml"
    if not file.exists():
        file = next((bundled_suite() / "smtpd").glob("*.yaml"))
    scenarios = load_scenarios(file)
    with QmailSim() as sim:
        sim.play(scenarios[0])
        assert sim.home.is_dir()
    results = run_scenarios(file)
    assert [r.status for r in results] == ["pass"] * len(scenarios)


def test_a_failing_expect_in_a_played_scenario_raises(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("name: x\nsteps:\n  - expect: {queue: {messages: 1}}\n")
    with QmailSim() as sim, pytest.raises(StepFailed, match="queue"):
        sim.play(load_scenarios(file)[0])
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: y\n")
    with pytest.raises(ApiError, match="steps"):
        load_scenarios(broken)


def test_as_email_parses_bytes() -> None:
    assert as_email(b"Subject: a\n\nb\n")["Subject"] == "a"


@pytest.mark.qmail(me="marked.example", patches=["date-localtime"], controls={"databytes": "99"})
def test_the_marker_configures_the_fixture(qmail_sim: QmailSim) -> None:
    assert (qmail_sim.home / "control" / "me").read_text() == "marked.example\n"
    assert (qmail_sim.home / "control" / "databytes").read_text() == "99\n"
    assert qmail_sim.scenario().patches == ("date-localtime",)


def test_the_fixture_is_fresh_for_each_test(qmail_sim: QmailSim) -> None:
    assert (qmail_sim.home / "control" / "me").read_text() == "example.org\n"
    assert qmail_sim.queue() == [] and qmail_sim.maildir_files("alias") == []
    assert not any(line.startswith("new msg") for line in qmail_sim.log())


def test_setting_step_and_expect() -> None:
    with QmailSim(me="mx.example.org") as sim:
        sim.setting("limits", {"virtual": "2d"}).user("alice")
        sim.control("locals", "example.org")
        sim.step(
            "smtp", {"transcript": "S: 220 mx.example.org ESMTP\nC: QUIT\nS: ~ ^221", "exit": 0}
        )
        sim.inject(MESSAGE, "alice@example.org")
        sim.run().expect(queue={"messages": 0}, maildir={"alice": {"count": 1}})
        with pytest.raises(StepFailed, match="maildir"):
            sim.expect(maildir={"alice": {"count": 2}})
        with pytest.raises(LimitExceeded, match=r"limits\.virtual"):
            sim.advance("3d")


def test_me_none_leaves_control_me_to_the_home_default() -> None:
    with QmailSim(me=None) as sim:
        assert sim.scenario().control == {}
        assert sim.smtp("S: ~ ^220 \nC: QUIT\nS: ~ ^221 ")[0].startswith("220 ")


def test_mbox_by_path_and_without_one() -> None:
    with QmailSim() as sim:
        sim.user("bob", dotqmail={"": "./Other"})
        sim.inject(MESSAGE, "bob@example.org")
        sim.run()
        assert [m["Subject"] for m in sim.mbox("bob", "Other")] == ["hi"]
        with pytest.raises(ApiError, match="no mbox"):
            sim.mbox("bob")
