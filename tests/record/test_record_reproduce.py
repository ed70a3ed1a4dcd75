"""qmail-sim reproduce: scenarios built from a log line and a DNS capture, run on the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import digparse
from harness.commands.reproduce import dump, run, run_data
from harness.logparse import parse as parse_line
from harness.reproduce import build
from harness.reproduce_fixes import FIXES, delivering, try_fixes
from harness.scenario import load_text
from tests.record.reproducing import reproduce_args

CNAME = (
    "@400000006920c0a01d2b3c4d delivery 12: deferral: CNAME_lookup_failed_temporarily._(#4.4.3)/"
)
NOHOST = "delivery 2: deferral: Sorry,_I_couldn't_find_any_host_by_that_name._(#4.1.2)/"
NXHOST = "delivery 3: failure: Sorry,_I_couldn't_find_any_host_named_gone.example._(#5.1.2)/"
NOCONN = "delivery 4: deferral: Sorry,_I_wasn't_able_to_establish_an_SMTP_connection._(#4.4.1)/"


def dig(qtype: str, status: str, size: int, records: str = "", extra: str = "") -> str:
    answer = f"\n;; ANSWER SECTION:\n{records}" if records else ""
    return (
        f"; <<>> DiG 9.18.24 <<>> far.example {qtype}\n{extra}"
        f";; ->>HEADER<<- opcode: QUERY, status: {status}, id: 7\n"
        ";; flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 0\n\n"
        f";; QUESTION SECTION:\n;far.example.\t\tIN\t{qtype}\n{answer}\n"
        f";; MSG SIZE  rcvd: {size}\n\n"
    )


MX = "far.example.\t300\tIN\tMX\t10 mx.far.example.\nmx.far.example.\t300\tIN\tA\t198.51.100.7\n"


def fixes_that_deliver(data: dict[str, Any]) -> set[str]:
    return {t.name for t in try_fixes(data, run_data) if t.delivered}


def test_servfail_on_any_reproduces_and_answering_any_fixes_it() -> None:
    rep = build(
        parse_line(CNAME), domain="far.example", dig=digparse.parse(dig("ANY", "SERVFAIL", 40))
    )
    assert rep.scenario["dns"]["rules"] == [
        {"name": "far.example", "type": "ANY", "rcode": "SERVFAIL"}
    ]
    assert "mx.far.example" in rep.scenario["dns"]["zone"]  # added so that a fix can deliver
    assert run_data(rep.scenario) == (True, "")
    delivered = fixes_that_deliver(rep.scenario)
    assert {"any-answered", "any-rfc8482", "dns-healthy"} <= delivered
    assert "qmail-103" not in delivered  # the patch is about size, not SERVFAIL


def test_oversize_any_capture_keeps_records_on_loopback_and_qmail_103_fixes_it() -> None:
    capture = digparse.parse(
        dig("ANY", "NOERROR", 1030, MX, ";; Truncated, retrying in TCP mode.\n")
    )
    rep = build(parse_line(CNAME), domain="far.example", recipient="bob@far.example", dig=capture)
    assert rep.addresses == {"198.51.100.7": "127.0.2.10"}
    assert "198.51.100.7" not in dump(rep.scenario)
    assert rep.scenario["dns"]["rules"] == [{"name": "far.example", "type": "ANY", "pad_to": 1030}]
    assert run_data(rep.scenario) == (True, "")
    assert {"qmail-103", "no-padding"} <= fixes_that_deliver(rep.scenario)


def test_oversize_mx_defers_with_no_host_by_that_name() -> None:
    rep = build(
        parse_line(NOHOST), domain="far.example", dig=digparse.parse(dig("MX", "NOERROR", 900, MX))
    )
    assert run_data(rep.scenario) == (True, "")
    assert "qmail-103" in fixes_that_deliver(rep.scenario)


def test_nxdomain_failure_nothing_fixes() -> None:
    capture = digparse.parse(dig("ANY", "NXDOMAIN", 100).replace("far.example", "gone.example"))
    rep = build(parse_line(NXHOST), domain="gone.example", dig=capture)
    assert run_data(rep.scenario) == (True, "")
    assert fixes_that_deliver(rep.scenario) == set()


def test_no_capture_guesses_from_the_code() -> None:
    rep = build(parse_line(NOCONN), domain="far.example")
    assert any("refuses connections" in n for n in rep.notes)
    assert run_data(rep.scenario) == (True, "")
    assert fixes_that_deliver(rep.scenario) == {"peers-accept"}


ZONE = """\
$ORIGIN far.example.
$TTL 300
@ IN SOA ns hostmaster ( 1 2 3 4 5 )
@ MX 10 mx
mx A 192.0.2.7
"""


def test_zone_file_with_no_failure_in_it_guesses_from_the_code() -> None:
    rep = build(parse_line(NOHOST), domain="far.example", zone_text=ZONE)
    assert "mx.far.example. 300 IN A 127.0.2.10" in rep.scenario["dns"]["zone"]
    assert rep.scenario["dns"]["rules"] == [
        {"name": "far.example", "type": "MX", "rcode": "SERVFAIL"}
    ]
    assert any("no failure captured: guessing SERVFAIL on MX" in n for n in rep.notes)
    assert run_data(rep.scenario) == (True, "")
    assert fixes_that_deliver(rep.scenario) == {"dns-healthy"}


def test_bad_zone_file() -> None:
    with pytest.raises(ValueError, match="zone file"):
        build(parse_line(NOHOST), domain="far.example", zone_text="far.example. IN BOGUS x y\n")


def test_timeout_capture() -> None:
    capture = digparse.parse(
        "; <<>> DiG 9.18.24 <<>> far.example ANY\n"
        ";; connection timed out; no servers could be reached\n"
    )
    rep = build(parse_line(CNAME), domain="far.example", dig=capture)
    assert rep.scenario["dns"]["rules"] == [{"name": "far.example", "type": "ANY", "timeout": True}]
    assert run_data(rep.scenario) == (True, "")


def test_written_scenario_loads_and_delivering_variant_replaces_the_expect() -> None:
    rep = build(parse_line(CNAME), domain="far.example")
    (scenario,) = load_text(dump(rep.scenario), "/tmp/r.yaml")
    assert scenario.steps[-1].kind == "expect"
    fixed = delivering(rep.scenario)
    assert fixed["steps"][-1]["expect"]["queue"] == {"messages": 0}
    assert rep.scenario["steps"][-1]["expect"] == {"log": [f"deferral: {parse_line(CNAME).text}"]}
    assert len({name for name, _, _ in FIXES}) == len(FIXES)


def test_success_line_is_refused() -> None:
    with pytest.raises(ValueError):
        build(parse_line("delivery 1: success: did_0+0+1/"), domain="x.example")


def test_command_writes_runs_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = tmp_path / "any.dig"
    capture.write_text(dig("ANY", "NOERROR", 1030, MX))
    out = tmp_path / "r.yaml"
    start = "starting delivery 12: msg 100001 to remote bob@far.example"
    code = run(
        reproduce_args(
            "--log", start, "--log", CNAME, "--dig", str(capture), "-o", str(out), "--run"
        )
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "reproduced" in text and "DELIVERS" in text and "qmail-103" in text
    assert "bob@far.example" in out.read_text()


def test_command_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(reproduce_args("--log", "new msg 5", "--domain", "x.example")) == 2
    assert "not a qmail-send delivery line" in capsys.readouterr().err
    assert run(reproduce_args("--log", CNAME)) == 2  # no domain anywhere
    bad = tmp_path / "bad.dig"
    bad.write_text("hello\n")
    assert run(reproduce_args("--log", CNAME, "--dig", str(bad))) == 2


@pytest.mark.parametrize(
    ("report", "stage"),
    [
        ("Connected_to_192.0.2.25_but_greeting_failed./Remote_host_said:_421_busy/", "greeting"),
        ("Connected_to_192.0.2.25_but_sender_was_rejected./Remote_host_said:_451_later/", "mail"),
        (
            "192.0.2.25_does_not_like_recipient./Remote_host_said:_451_greylisted/"
            "Giving_up_on_192.0.2.25./",
            "rcpt",
        ),
        ("192.0.2.25_failed_after_I_sent_the_message./Remote_host_said:_452_full/", "end"),
    ],
)
def test_remote_replies_become_the_peers_script(report: str, stage: str) -> None:
    rep = build(parse_line(f"delivery 9: deferral: {report}"), domain="far.example")
    (peer,) = rep.scenario["peers"].values()
    assert list(peer) == [stage]
    assert "192.0.2.25" not in rep.expect_text and "127.0.2.10" in rep.expect_text
    assert run_data(rep.scenario) == (True, "")
    assert fixes_that_deliver(rep.scenario) == {"peers-accept"}


def test_real_dig_capture_of_two_problems_needs_both_fixed() -> None:
    """An oversize ANY answer and SERVFAIL on MX (dig 9.18's own output): the patch
    alone gets past the CNAME lookup only to stop at the MX lookup."""
    text = (Path(__file__).parent / "data" / "dig-9.18-fake-dns.txt").read_text()
    rep = build(parse_line(CNAME), domain="far.example", dig=digparse.parse(text))
    assert {"name": "far.example", "type": "ANY", "pad_to": 1048} in rep.scenario["dns"]["rules"]
    assert {"name": "slow.example", "type": "A", "timeout": True} in rep.scenario["dns"]["rules"]
    assert run_data(rep.scenario) == (True, "")
    assert fixes_that_deliver(rep.scenario) == {"qmail-103 + dns-healthy"}


def test_cname_loop_capture_reproduces_the_bounce() -> None:
    loop = (
        "loop1.example.\t300\tIN\tCNAME\tloop2.example.\n"
        "loop2.example.\t300\tIN\tCNAME\tloop1.example.\n"
    )
    capture = dig("ANY", "NOERROR", 80, loop).replace("far.example", "loop1.example")
    line = "delivery 1: failure: Sorry,_I_couldn't_find_a_mail_exchanger_or_IP_address._(#5.4.4)/"
    rep = build(parse_line(line), domain="loop1.example", dig=digparse.parse(capture))
    assert "MX" not in rep.scenario["dns"]["zone"]  # nothing added beside the CNAME
    assert run_data(rep.scenario) == (True, "")
