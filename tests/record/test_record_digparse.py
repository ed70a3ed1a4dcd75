"""harness.digparse: dig's text output, whole, several runs, timeouts, garbage."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.digparse import DigAnswer, DigParseError, Record, parse

SERVFAIL_ANY = """\

; <<>> DiG 9.18.24-1-Debian <<>> far.example ANY
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: SERVFAIL, id: 5150
;; flags: qr rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
; COOKIE: 0f4e5d7a8b9c0d1e0100000065536c1a2b3c4d5e6f708192 (good)
;; QUESTION SECTION:
;far.example.\t\t\tIN\tANY

;; Query time: 12 msec
;; SERVER: 127.0.0.53#53(127.0.0.53) (UDP)
;; WHEN: Wed Nov 25 19:00:00 UTC 2026
;; MSG SIZE  rcvd: 40

"""

MX_ANSWER = """\
; <<>> DiG 9.16.44 <<>> MX far.example
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1
;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 1, ADDITIONAL: 1

;; QUESTION SECTION:
;far.example.\t\t\tIN\tMX

;; ANSWER SECTION:
far.example.\t\t300\tIN\tMX\t10 mx.far.example.

;; AUTHORITY SECTION:
far.example.\t\t300\tIN\tNS\tns.far.example.

;; ADDITIONAL SECTION:
mx.far.example.\t\t300\tIN\tA\t192.0.2.25

;; MSG SIZE  rcvd: 96
"""

TIMEOUT = """\
; <<>> DiG 9.18.24 <<>> @192.0.2.53 far.example ANY
; (1 server found)
;; global options: +cmd
;; connection timed out; no servers could be reached
"""


def test_servfail() -> None:
    (run,) = parse(SERVFAIL_ANY)
    assert (run.qname, run.qtype, run.status, run.flags) == (
        "far.example.",
        "ANY",
        "SERVFAIL",
        ("qr", "rd", "ra"),
    )
    assert (run.msg_size, run.server, run.records, run.oversize) == (40, "127.0.0.53", [], False)


def test_sections_and_several_runs() -> None:
    runs = parse(SERVFAIL_ANY + MX_ANSWER + TIMEOUT)
    assert [r.qtype for r in runs] == ["ANY", "MX", "ANY"]
    mx = runs[1]
    assert mx.answer == [
        Record(name="far.example.", ttl=300, type="MX", rdata="10 mx.far.example.")
    ]
    assert mx.authority[0].zone_line() == "far.example. 300 IN NS ns.far.example."
    assert mx.additional[0].rdata == "192.0.2.25"
    assert runs[2].timed_out and runs[2].qname == "far.example." and runs[2].status == ""


def test_truncated_retry_is_oversize() -> None:
    text = MX_ANSWER.replace(";; ->>HEADER", ";; Truncated, retrying in TCP mode.\n;; ->>HEADER")
    (run,) = parse(text)
    assert run.truncated and run.oversize


@pytest.mark.parametrize(
    "text",
    ["", "10 mx.far.example.\n", "far.example. 300 IN MX 10 mx.\n", "; <<>> DiG 9.18 <<>> x\n"],
)
def test_not_dig_output(text: str) -> None:
    with pytest.raises(DigParseError):
        parse(text)


# -- properties: dig output we write the way dig does, parsed back -------------------------

LABEL = st.builds(str.__add__, st.sampled_from("afmxz"), st.text("ab0-", max_size=5))
NAME = st.lists(LABEL, min_size=1, max_size=3).map(lambda ls: ".".join(ls) + ".example.")
RECORD = st.builds(
    Record,
    name=NAME,
    ttl=st.integers(0, 2**31 - 1),
    type=st.sampled_from(["A", "MX", "CNAME", "TXT"]),
    rdata=st.sampled_from(["192.0.2.1", "10 mx.far.example.", "alias.example.", '"v=spf1 -all"']),
)
SECTION = st.lists(RECORD, max_size=4)


def dig_text(qname: str, qtype: str, status: str, sections: list[list[Record]], size: int) -> str:
    out = [f"; <<>> DiG 9.18.24 <<>> {qname} {qtype}", ";; global options: +cmd", ";; Got answer:"]
    out.append(f";; ->>HEADER<<- opcode: QUERY, status: {status}, id: 4242")
    out.append(";; flags: qr rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0")
    out += ["", ";; QUESTION SECTION:", f";{qname}\t\t\tIN\t{qtype}"]
    for title, records in zip(("ANSWER", "AUTHORITY", "ADDITIONAL"), sections, strict=True):
        if records:
            out += ["", f";; {title} SECTION:"]
            out += [f"{r.name}\t\t{r.ttl}\tIN\t{r.type}\t{r.rdata}" for r in records]
    out += ["", ";; Query time: 1 msec", f";; MSG SIZE  rcvd: {size}", ""]
    return "\n".join(out) + "\n"


RUN = st.tuples(
    NAME,
    st.sampled_from(["ANY", "MX", "A"]),
    st.sampled_from(["NOERROR", "SERVFAIL", "NXDOMAIN", "REFUSED"]),
    st.tuples(SECTION, SECTION, SECTION),
    st.integers(12, 65535),
)


@settings(max_examples=50)  # each example is a few dig runs of many lines
@given(st.lists(RUN, min_size=1, max_size=3))
def test_whole_output_round_trips(
    runs: list[tuple[str, str, str, tuple[list[Record], ...], int]],
) -> None:
    text = "".join(dig_text(q, t, s, list(secs), n) for q, t, s, secs, n in runs)
    parsed = parse(text)
    assert len(parsed) == len(runs)
    for got, (qname, qtype, status, secs, size) in zip(parsed, runs, strict=True):
        assert (got.qname, got.qtype, got.status, got.msg_size) == (qname, qtype, status, size)
        assert (got.answer, got.authority, got.additional) == tuple(secs)
        assert got.oversize == (size > 512)


@settings(max_examples=50)
@given(RUN, st.text(max_size=60))
def test_trailing_garbage_parses_or_says_which_line(
    run: tuple[str, str, str, tuple[list[Record], ...], int], garbage: str
) -> None:
    qname, qtype, status, secs, size = run
    text = dig_text(qname, qtype, status, list(secs), size) + garbage
    try:
        parsed = parse(text)
    except DigParseError as exc:
        assert exc.lineno >= 1
    else:
        assert parsed[0].qname == qname


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_dig_parse_error(text: str) -> None:
    with contextlib.suppress(DigParseError):
        parse(text)


# -- real dig output ------------------------------------------------------------------------

DATA = Path(__file__).parent / "data"


def check_fake_dns_capture(runs: list[DigAnswer]) -> None:
    """Three runs against ``qmail-sim dns`` with rules: an ANY answer padded to 1000 bytes
    (dig retries over TCP), SERVFAIL on MX, no answer at all for slow.example."""
    big, servfail, silent = runs
    assert (big.qname, big.qtype, big.status, big.oversize) == (
        "far.example.",
        "ANY",
        "NOERROR",
        True,
    )
    assert big.answer[0].zone_line() == "far.example. 300 IN MX 10 mx.far.example."
    assert (servfail.qtype, servfail.status, servfail.timed_out) == ("MX", "SERVFAIL", False)
    assert (silent.qname, silent.qtype, silent.timed_out) == ("slow.example.", "A", True)


def test_dig_9_18_output_captured_from_the_fake_dns() -> None:
    check_fake_dns_capture(parse((DATA / "dig-9.18-fake-dns.txt").read_text()))


@pytest.mark.live
@pytest.mark.external
def test_real_dig_against_the_fake_dns(tmp_path: Path) -> None:
    dig = shutil.which("dig")
    if dig is None:
        pytest.skip("dig is not installed (Debian package bind9-dnsutils)")
    (tmp_path / "z").write_text(
        "far.example. 300 IN MX 10 mx.far.example.\nmx.far.example. 300 IN A 127.0.2.10\n"
    )
    (tmp_path / "r.yaml").write_text(
        "- {name: far.example, type: ANY, pad_to: 1000}\n"
        "- {name: far.example, type: MX, rcode: SERVFAIL}\n"
        "- {name: slow.example, timeout: true}\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "dns", str(tmp_path / "z"),
         "--listen", "127.0.0.1:0", "--rules", str(tmp_path / "r.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert server.stdout is not None
    try:
        banner = server.stdout.readline().decode()
        port = re.search(r"127\.0\.0\.1:(\d+)", banner)
        assert port, banner
        out = ""
        for query in (["far.example", "ANY"], ["far.example", "MX"], ["slow.example", "A"]):
            out += subprocess.run(
                [dig, "@127.0.0.1", "-p", port[1], *query, "+tries=1", "+time=1"],
                capture_output=True, text=True, timeout=30, check=False,
            ).stdout  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()
    check_fake_dns_capture(parse(out))
