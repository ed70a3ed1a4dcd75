"""reproduce --log-file: whole logs in every format, retry times, the resolver as a suspect."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from harness import maillog, timeline, timeline_log
from harness.commands.reproduce import run
from harness.reproduce_history import schedule, schedule_notes
from harness.reproduce_suspects import total_wait
from server.dns.resolvconf import parse as parse_resolvconf
from tests.record.maillogs import CNAME, FORMATS, SUCCESS, Entry, story, write
from tests.record.reproducing import reproduce_args

reports = st.sampled_from(
    [CNAME, "Sorry,_I_couldn't_find_any_host_by_that_name._(#4.1.2)/", "451_greylisted/"]
)


@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    zipped=st.booleans(),
    msg=st.integers(1, 2**31),
    local=st.from_regex(r"[a-z][a-z0-9.]{0,10}", fullmatch=True),
    deferrals=st.lists(reports, min_size=1, max_size=6),
    took=st.sampled_from([0.0, 0.25, 10.0, 30.0]),
    ends_well=st.booleans(),
)
def test_every_format_gives_back_the_history_it_was_written_from(
    tmp_path_factory: pytest.TempPathFactory,
    fmt: str,
    zipped: bool,
    msg: int,
    local: str,
    deferrals: list[str],
    took: float,
    ends_well: bool,
) -> None:
    rcpt = f"{local}@far.example"
    results = [("deferral", r, took) for r in deferrals]
    if ends_well:
        results.append(("success", SUCCESS, 0.5))
    other = story(msg + 1, "carol@near.example", [("deferral", CNAME, 0.0)])
    path = write(tmp_path_factory.mktemp("log") / "current", other + story(msg, rcpt, results),
                 fmt, zipped=zipped)  # fmt: skip
    h = maillog.load([path], rcpt=rcpt)
    assert (h.message, h.recipient) == (msg, rcpt)
    assert [(t.result, t.report) for t in h.tries] == [(r, t) for r, t, _ in results]
    assert h.ending == ("success" if ends_well else "pending")
    if fmt != "plain":  # a plain log has no times: every line is at 0
        starts = schedule(len(results))  # a slow result does not move the next retry
        assert [t.started for t in h.tries] == pytest.approx(starts, abs=1e-3)
        assert h.tries[0].finished == pytest.approx(took, abs=1e-3)
    assert maillog.load([path], msg=msg).message == msg


@given(st.lists(st.text(max_size=80), max_size=20))
def test_any_text_gives_a_history_or_says_there_is_none(lines: list[str]) -> None:
    tl = timeline.build(timeline_log.parse("\n".join(lines)))
    try:
        index = maillog.pick(tl)
    except maillog.HistoryError:
        return
    h = maillog.history(tl, index)
    assert h.first_problem.result in ("deferral", "failure")
    assert all(t.started >= 0 or not h.born_in_log for t in h.tries)


def test_qmail_retry_schedule_exact_numbers() -> None:
    assert schedule(5) == [0, 400, 1600, 3600, 6400]


def test_resolver_wait_follows_glibc() -> None:
    assert total_wait(parse_resolvconf("")) == 10  # 127.0.0.1, 5 s, 2 rounds
    one = parse_resolvconf("nameserver 192.0.2.1\noptions timeout:3 attempts:4\n")
    assert total_wait(one) == 12
    # three servers: 5, (5<<1)//3, (5<<2)//3 seconds a round (res_send.c send_dg)
    assert total_wait(parse_resolvconf("nameserver 192.0.2.1\n" * 3)) == (5 + 3 + 6) * 2


def reproduce(tmp_path: Path, *argv: str) -> tuple[int, str, Path]:
    out = tmp_path / "out.yaml"
    return run(reproduce_args(*argv, "--run", "-o", str(out))), "", out


def test_dead_name_server_is_ranked_first_from_the_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = [("deferral", CNAME, 10.0), ("deferral", CNAME, 10.0), ("success", SUCCESS, 0.2)]
    log = write(tmp_path / "mail.log.gz", story(4711, "bob@far.example", results), "splogger",
                zipped=True)  # fmt: skip
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.168.1.1\nsearch lan\n")
    status, _, out = reproduce(tmp_path, "--log-file", str(log), "--resolv-conf", str(conf))
    said = capsys.readouterr().out
    assert status == 0, said
    first = next(line for line in said.splitlines() if "suspect 1:" in line)
    assert "dead-ns (REPRODUCES, timing fits)" in first
    assert "reproduced: the simulator logs the same line" in said
    assert "DELIVERS     with resolv-conf" in said
    assert "127.0.3.10" in out.read_text()  # resolv.conf's server, played on loopback


def test_an_instant_deferral_clears_the_dead_name_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = [("deferral", CNAME, 0.01), ("deferral", CNAME, 0.01), ("success", SUCCESS, 0.2)]
    log = write(tmp_path / "current", story(9, "bob@far.example", results), "multilog")
    status, _, out = reproduce(tmp_path, "--log-file", str(log))
    said = capsys.readouterr().out
    assert status == 0, said
    ranks = [line for line in said.splitlines() if "suspect " in line]
    assert "dead-ns" in ranks[-1] and "timing does not fit" in ranks[-1]
    # the condition ends before the last attempt, which delivers as in the log
    text = out.read_text()
    assert "until:" in text and "success" in text
    assert yaml.safe_load(text)["name"].endswith("(3 attempts, success)")
    assert "REPRODUCES" in ranks[0] and "servfail" in ranks[0]  # no resolv.conf to check


def test_control_files_are_imported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    control = tmp_path / "control"
    control.mkdir()
    (control / "me").write_text("mx.site.example\n")
    (control / "timeoutremote").write_text("60\n")
    (control / "rcpthosts").write_text("site.example\n")  # not about delivery
    log = write(tmp_path / "current", story(9, "bob@far.example", [("deferral", CNAME, 0)]),
                "splogger")  # fmt: skip
    status, _, out = reproduce(tmp_path, "--log-file", str(log), "--home", str(tmp_path))
    assert status == 0, capsys.readouterr().out
    text = out.read_text()
    assert "me: |\n    mx.site.example" in text and "timeoutremote" in text
    assert "site.example\n" not in text.partition("rcpthosts")[2].partition("users")[0]


def test_a_retry_off_qmail_s_schedule_is_reported(tmp_path: Path) -> None:
    on_time = story(5, "bob@far.example", [("deferral", CNAME, 10.0)] * 3)
    assert schedule_notes(maillog.load([write(tmp_path / "a", on_time, "splogger")])) == [
        "all 3 attempts at qmail's retry times (birth + (√age + 20)²)"
    ]
    # the second retry 3 hours late: qmail-send was stopped in between
    late = [Entry(e.at + 10800 if e.at >= 1600 else e.at, e.text) for e in on_time]
    (note,) = schedule_notes(maillog.load([write(tmp_path / "b", late, "multilog")]))
    assert note.startswith("attempt at +12400s is 10800s later than qmail's retry time +1600s")


def test_the_simulator_s_resolver_waits_for_a_dead_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from harness.commands import show

    parser = argparse.ArgumentParser()
    show.add_arguments(parser)
    suite = Path(__file__).resolve().parents[2] / "scenarios" / "reproduce"
    assert show.run(parser.parse_args([str(suite / "dead-nameserver.yaml")])) == 0
    said = capsys.readouterr().out
    # glibc: 5 s x 2 rounds for one server; the retry stays at birth + 400 s (pass_dochan)
    assert "+10s  deferral  remote bob@far.example, try 1, took 10s, next try +6m40s" in said
    assert "+6m51s  deferral  remote bob@far.example, try 2, took 10s" in said


def test_a_bounce_after_deferrals_is_replayed_as_queuelifetime_running_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dying = ("failure", CNAME + maillog.DYING, 0.01)
    entries = story(8, "bob@far.example", [("deferral", CNAME, 0.01)] * 3 + [dying], end=False)
    entries += [Entry(3600.1, "bounce msg 8 qp 300"), Entry(3600.2, "end msg 8")]
    log = write(tmp_path / "current", entries, "splogger")
    status, _, out = reproduce(tmp_path, "--log-file", str(log))
    said = capsys.readouterr().out
    assert status == 0, said
    assert "ending expired" in said and "queuelifetime taken as 3599s" in said
    data = yaml.safe_load(out.read_text())
    assert data["control"]["queuelifetime"] == "3599"
    assert data["steps"][-1]["expect"]["log"][-1] == "~ ^bounce msg \\d+ qp \\d+$"


def test_without_a_log_it_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(reproduce_args("--domain", "far.example")) == 2
    assert "give --log LINE or --log-file FILE" in capsys.readouterr().err


def test_a_log_without_the_message_asked_for_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write(tmp_path / "current", story(9, "bob@far.example", [("deferral", CNAME, 0)]),
                "plain")  # fmt: skip
    assert run(reproduce_args("--log-file", str(log), "--msg", "10")) == 2
    assert "no remote deferral or failure in the log for msg 10" in capsys.readouterr().err


def test_a_multilog_directory_is_read_rotated_files_first(tmp_path: Path) -> None:
    results = [("deferral", CNAME, 10.0), ("deferral", CNAME, 10.0), ("success", SUCCESS, 0.2)]
    entries = story(21, "bob@far.example", results)
    logdir = tmp_path / "main"
    logdir.mkdir()
    # multilog names a rotated file after the TAI64N time it was rotated
    write(logdir / "@400000006933ff3a0a1b2c3d.s", entries[:5], "multilog")
    write(logdir / "@400000006933ff390a1b2c3d.s", [], "multilog")
    write(logdir / "current", entries[5:], "multilog")
    h = maillog.load([logdir])
    assert [t.result for t in h.tries] == ["deferral", "deferral", "success"]
    assert h.ending == "success" and h.tries[1].started == pytest.approx(400, abs=1e-3)
