"""Unit tests for the live/reference machinery: frames, SYN parsing, normalising, diffs."""

from __future__ import annotations

import io
import socket
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from harness.compare import (
    Record,
    bounce_in_order,
    compare,
    digest,
    first_difference,
    normalise,
)
from harness.scenario.model import Scenario
from harness.targets.agentwire import Request, read_frame, write_frame
from harness.targets.base import Observation
from harness.targets.live import client_ips
from harness.targets.livepeers import syn_to
from server.send.bounce import bounce_entry


class Trickle(io.RawIOBase):
    """Gives its bytes back one at a time, as a slow pipe would."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        out, self.data = self.data[:1], self.data[1:]
        return out


@given(st.dictionaries(st.text(max_size=5), st.binary(max_size=50), max_size=4))
def test_frames_round_trip_whole_byte_at_a_time_and_with_trailing(args: dict[str, bytes]) -> None:
    out = io.BytesIO()
    write_frame(out, Request(verb="session", args=args))
    wire = out.getvalue()
    assert read_frame(io.BytesIO(wire)) == Request(verb="session", args=args)
    assert read_frame(Trickle(wire)) == Request(verb="session", args=args)  # type: ignore[arg-type]
    rest = io.BytesIO(wire + b"\x00\x00")
    read_frame(rest)
    assert rest.read() == b"\x00\x00"


def test_a_cut_frame_is_eof() -> None:
    out = io.BytesIO()
    write_frame(out, "x")
    try:
        read_frame(io.BytesIO(out.getvalue()[:-1]))
    except EOFError:
        return
    raise AssertionError("a cut frame must raise EOFError")


def frame(dst: str, dport: int, sport: int, flags: int) -> bytes:
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0,
        socket.inet_aton("127.0.0.1"), socket.inet_aton(dst),
    )  # fmt: skip
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, flags, 0, 0, 0)
    return bytes(12) + b"\x08\x00" + ip + tcp


def test_syn_to_reads_a_syn_and_ignores_the_rest() -> None:
    assert syn_to(frame("127.0.2.41", 25, 40000, 0x02)) == ("127.0.2.41", 25, 40000)
    assert syn_to(frame("127.0.2.41", 25, 40000, 0x12)) is None  # SYN+ACK
    assert syn_to(frame("127.0.2.41", 25, 40000, 0x10)) is None  # ACK
    assert syn_to(b"") is None


@given(st.binary(max_size=80))
def test_syn_to_never_raises(data: bytes) -> None:
    syn_to(data)
    syn_to(frame("127.0.0.1", 25, 1, 2)[:34] + data)


def test_normalise_pids_inodes_times_and_hosts() -> None:
    hosts = {"sim.example", "box7"}
    assert normalise("new msg 12345", hosts) == "new msg N"
    assert normalise("info msg 99: bytes 220 from <a@b> qp 1001 uid 0", hosts) == (
        "info msg N: bytes N from <a@b> qp N uid N"
    )
    assert normalise("250 ok 1700000000 qp 1001", hosts) == "250 ok N qp N"
    assert normalise("+OK <1001.1700000000@box7>", hosts) == "+OK <pid.time@host>"
    assert normalise("Received: (qmail 1001 invoked from network); 14 Nov 2023 22:13:20 -0000") == (
        "Received: (qmail N invoked from network); <date> -0000"
    )
    # the zone stays: TZ and the date-localtime patch decide it
    assert normalise("Date: 15 Nov 2023 07:13:20 +0900") == "Date: <date> +0900"
    assert normalise("15 Nov 2023 07:13:20 GMT  #12  6  <s@x>") == "<date> GMT  #12  6  <s@x>"
    assert normalise("by sim.example with SMTP", hosts) == "by <host> with SMTP"
    assert normalise("1700000000.1001.box7", hosts) == "<mdname>"
    assert normalise("triple bounce: discarding bounce/3211724") == (
        "triple bounce: discarding bounce/N"
    )
    assert normalise("delivery 2: success: did_0+1+0/qp_18865/") == (
        "delivery N: success: did_0+1+0/qp_N/"
    )
    assert normalise("starting delivery 12: msg 7 to local a@b") == (
        "starting delivery N: msg N to local a@b"
    )
    assert normalise(
        "delivery 3: success: 127.0.2.10_accepted_message./Remote_host_said:_250_ok_2/"
    ) == ("delivery N: success: 127.0.2.10_accepted_message./Remote_host_said:_250_ok_N/")


@given(st.text(max_size=60))
def test_normalise_is_idempotent(line: str) -> None:
    once = normalise(line, {"box7.example"})
    assert normalise(once, {"box7.example"}) == once


SCENARIO = Scenario(name="s", file="f.yaml", line=1)


def test_first_difference_names_step_and_line() -> None:
    ours, theirs = Record(), Record()
    ours.add("step 1 (smtp, line 3)", ["220 a ESMTP", "250 ok"])
    theirs.add("step 1 (smtp, line 3)", ["220 a ESMTP", "502 unimplemented (#5.5.1)"])
    c = first_difference(ours, theirs, SCENARIO)
    assert (c.verdict, c.step, c.line) == ("differs", "step 1 (smtp, line 3)", 2)
    assert (c.ours, c.theirs) == ("250 ok", "502 unimplemented (#5.5.1)")


def test_identical_after_normalising_and_not_comparable_is_never_identical() -> None:
    ours, theirs = Record(), Record()
    ours.add("step 1", ["new msg 5"])
    theirs.add("step 1", ["new msg 77"])
    assert first_difference(ours, theirs, SCENARIO).verdict == "identical"
    theirs.stopped = "not comparable at step 2 (advance, line 9): no clock"
    c = first_difference(ours, theirs, SCENARIO)
    assert c.verdict == "not comparable" and "step 2" in c.note


def test_missing_lines_are_a_difference() -> None:
    ours, theirs = Record(), Record()
    ours.add("step 1", ["a", "b"])
    theirs.add("step 1", ["a"])
    c = first_difference(ours, theirs, SCENARIO)
    assert (c.line, c.theirs) == (2, "<nothing>")


def test_client_ips_come_from_session_envs() -> None:
    from harness.scenario.model import SessionStep

    steps = (
        SessionStep(kind="smtp", env={"TCPREMOTEIP": "10.0.0.5"}),
        SessionStep(kind="smtp", env={"RELAYCLIENT": ""}),
        SessionStep(kind="smtp", env={"TCPREMOTEIP": "10.0.0.5"}),
    )
    assert client_ips(Scenario(name="s", file="f", line=1, steps=steps)) == ("10.0.0.5",)


def test_route_ports_reads_smtproutes_relays_with_ports() -> None:
    from harness.targets.livepeers import route_ports

    text = "far.example:127.0.2.60:2525\n:127.0.2.61\nx.example:[127.0.2.62]:26\nbad:127.0.2.63:x\n"
    assert route_ports(text) == {"127.0.2.60": {2525}, "127.0.2.62": {26}}
    assert route_ports(None) == {}
    assert route_ports("a:127.0.2.60:\u00b2\n") == {}  # a superscript two is no port


@given(st.text(max_size=80))
def test_route_ports_never_raises(text: str) -> None:
    from harness.targets.livepeers import route_ports

    for ports in route_ports(text).values():
        assert all(isinstance(p, int) for p in ports)


BOUNCE_HEAD = (
    "From: MAILER-DAEMON@mx\n\nHi. This is the qmail-send program at mx.\n"
    "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
    "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
)
BOUNCE_TAIL = "--- Below this line is a copy of the message.\n\nSubject: x\n\n<not@entry>:\n"
report = st.text(alphabet="abc \n", max_size=30)


@given(st.lists(st.tuples(st.from_regex(r"[a-z]{1,6}@x", fullmatch=True), report), max_size=5))
def test_bounce_entries_compare_in_any_order(failures: list[tuple[str, str]]) -> None:
    """addbounce() appends as deliveries finish; the digest sorts the entries."""
    entries = [bounce_entry(r, t.encode(), {}).decode() for r, t in failures]
    body = BOUNCE_HEAD + "".join(entries) + BOUNCE_TAIL
    flipped = BOUNCE_HEAD + "".join(reversed(entries)) + BOUNCE_TAIL
    assert bounce_in_order(body) == bounce_in_order(flipped)
    assert sorted(bounce_in_order(body)) == sorted(body)  # the same bytes, moved
    assert bounce_in_order(body).endswith(BOUNCE_TAIL)


def test_virtual_time_scenarios_are_not_comparable_off_the_simulator() -> None:
    scenario = Scenario(name="pinned", tags=("virtual-time",), file="pinned.yaml", line=1)
    result = compare(scenario, "live")
    assert result.verdict == "not comparable" and "virtual-time" in result.note


def test_pinned_scenarios_are_not_comparable_even_against_a_real_qmail() -> None:
    tags = ("virtual-time", "pinned")
    scenario = Scenario(name="pinned", tags=tags, file="pinned.yaml", line=1)
    result = compare(scenario, "qmail:/nonexistent")
    assert result.verdict == "not comparable" and "pinned" in result.note


def test_against_a_real_qmail_every_side_starts_at_the_current_second() -> None:
    from harness.compare import _real_start

    assert _real_start("sim", "live") is None
    start = _real_start("sim", "qmail:/var/qmail")
    assert start is not None and start == int(start)


def test_pop3_sizes_are_masked_but_not_counts() -> None:
    assert normalise("+OK 2 629") == normalise("+OK 2 619") != normalise("+OK 1 619")
    assert normalise("1 324") == normalise("1 319") != normalise("2 319")


def _world(root: Path, bodies: list[str], mbox: list[str]) -> Observation:
    home = root / "home"
    for sub in ("mess", "todo", "info", "local", "remote", "bounce"):
        (home / "queue" / sub).mkdir(parents=True)
    user = root / "bob"
    (user / "Maildir" / "new").mkdir(parents=True)
    for n, body in enumerate(bodies):
        (user / "Maildir" / "new" / f"{1700000000 + n}.{n}.host").write_text(body)
    (user / "mbox").write_text("".join(mbox))
    return Observation(
        home=home,
        workdir=root,
        user_homes={"bob": user},
        log=[],
        dns_queries=[],
        peer_sessions={},
        now=0.0,
        next_retry=None,
        extra={"mboxes": {"bob": user / "mbox"}},
    )


def test_digest_compares_what_concurrent_deliveries_leave_as_a_set(tmp_path: Path) -> None:
    bodies = [
        "Received: (qmail 11 invoked)\nSubject: a\n",
        "Received: (qmail 7 invoked)\nSubject: b\n",
    ]
    mbox = [
        "From x Tue Nov 14 22:13:20 2023\nSubject: 1\n\n",
        "From x Tue Nov 14 22:13:21 2023\nSubject: 2\n\n",
    ]
    one = digest(_world(tmp_path / "one", bodies, mbox))
    two = digest(_world(tmp_path / "two", bodies[::-1], mbox[::-1]))
    assert [normalise(line) for line in one] == [normalise(line) for line in two]
    assert "  Subject: a" in one and "  Subject: 2" in one


def test_each_sides_work_directory_is_not_a_difference() -> None:
    """A home path in a delivery result names the side's own work directory."""
    ours, theirs = Record(), Record()
    ours.workdirs.add("/dev/shm/qmail-cmp-aaaa")
    theirs.workdirs.add("/dev/shm/qmail-cmp-bbbb")
    line = "delivery 1: deferral: Unable_to_switch_to_{}/homes/bob:_access_denied._(#4.3.0)/"
    ours.add("step 2 (run, line 9)", [line.format("/dev/shm/qmail-cmp-aaaa")])
    theirs.add("step 2 (run, line 9)", [line.format("/dev/shm/qmail-cmp-bbbb")])
    assert first_difference(ours, theirs, SCENARIO).verdict == "identical"
