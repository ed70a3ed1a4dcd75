"""``qmail-sim dns``: a bad zone, bad rules or a port in use is one line and an exit code.

The command is run in-process (``harness.cli.main``); each failure here
happens before it would serve, so none of them waits.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from dnslib import RR

from harness.cli import main
from harness.fakedns import ZoneError, parse_zone

GOOD = """\
; a comment, then records
$TTL 300
far.example.      IN MX 10 mx.far.example.
                  IN MX 20 mx2.far.example.
mx.far.example.   60 IN A 127.0.2.10
soa.example. 60 IN SOA ns.example. host.example. (
    1 2 3
    4 5 )
txt.example. 60 IN TXT "a ; not a comment"
"""


def test_parse_zone_reads_what_dnslib_reads() -> None:
    assert [str(rr) for rr in parse_zone(GOOD)] == [str(rr) for rr in RR.fromZone(GOOD)]
    assert parse_zone("") == [] and parse_zone("; only a comment\n\n") == []


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a.example. 60 IN A 127.0.0.1\nfar.example. 300 IN MX ten mx.far.example.\n", 2),
        ("far.example. 300 IN MX ten mx.far.example.", 1),  # no newline at the end
        ("a.example. 60 IN A 127.0.0.1\n\n\n; gap\n\nb.example. 60 IN FOO x\n\n", 6),
        ("a.example. 60 IN A 127.0.0.1\nb.example. 60 IN A 1.2.3.400\nc. 60 IN A 1.2.3.4\n", 2),
        ("a.example. 60 IN A 127.0.0.1\nb.example. 60 IN MX\n", 2),  # too few fields
        ("a.example. 60 IN A 127.0.0.1\r\nb.example. 60 IN MX ten x.\r\n", 2),
        ("a.example. 60 IN TXT ok\nb.example. 60 IN TXT caf\u00e9\n", 2),  # the lexer's error
        ("$TTL abc\na.example. IN A 1.2.3.4\n", 1),
        # a record over several lines (parentheses) is reported at its first line
        (GOOD + "soa2.example. 60 IN SOA ns. host. (\n 1 2 3\n 4 x )\n", 10),
        (GOOD + "far.example. 300 IN MX ten mx.far.example.\n", 10),
    ],
)
def test_parse_zone_names_the_line_of_a_bad_record(text: str, line: int) -> None:
    with pytest.raises(ZoneError) as caught:
        parse_zone(text)
    assert caught.value.line == line
    assert caught.value.offset == line - 1  # the scenario loader's convention


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["dns", *argv])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


def test_a_bad_zone_file_is_one_line_with_its_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zone = tmp_path / "badzone.txt"
    zone.write_text("far.example. 300 IN A 127.0.0.1\nfar.example. 300 IN MX ten mx.far.example.\n")
    code, err = run(capsys, str(zone), "--listen", "127.0.0.1:0")
    assert code == 2
    assert err.startswith(f"qmail-sim dns: {zone}:2: zone does not parse: ")
    assert "'ten'" in err and err.count("\n") == 1


def test_an_unreadable_zone_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothere.txt"
    code, err = run(capsys, str(missing), "--listen", "127.0.0.1:0")
    assert code == 2 and err.startswith("qmail-sim dns: ") and err.count("\n") == 1
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"a.example. 60 IN A 127.0.0.1\nb.example. 60 IN TXT caf\xe9\n")
    code, err = run(capsys, str(latin1), "--listen", "127.0.0.1:0")
    assert code == 2 and err.startswith(f"qmail-sim dns: {latin1}:2: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("rules", "line", "key"),
    [
        ("- name: far.example\n  type: MX\n  rcode: BOGUS\n", 3, "rules[0].rcode"),
        ("- name: far.example\n  type: MX\n  colour: red\n", 3, "rules[0].colour"),
        ("# rules\n- name: far.example\n- name: b.example\n  times: many\n", 4, "rules[1].times"),
        ("- name: far.example\n  bad: x: y\n", 2, ""),  # YAML syntax
        ("name: far.example\n", 1, "rules"),  # a mapping, not a list
    ],
)
def test_rules_errors_name_the_line_of_the_rules_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rules: str, line: int, key: str
) -> None:
    zone = tmp_path / "zone.txt"
    zone.write_text("far.example. 300 IN A 127.0.0.1\n")
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    code, err = run(capsys, str(zone), "--rules", str(path), "--listen", "127.0.0.1:0")
    assert code == 2
    assert err.startswith(f"qmail-sim dns: {path}:{line}: {key + ': ' if key else ''}"), err
    assert err.count("\n") == 1


def test_rules_of_only_comments_are_no_rules(tmp_path: Path) -> None:
    from harness.commands.dns import load_spec

    zone = tmp_path / "zone.txt"
    zone.write_text("far.example. 300 IN A 127.0.0.1\n")
    path = tmp_path / "rules.yaml"
    path.write_text("# none yet\n\n")
    assert load_spec(zone, path, "127.0.0.1").rules == ()


@pytest.mark.live
@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["tcp", "udp"])
def test_a_port_in_use_is_one_line_and_exit_111(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: socket.SocketKind
) -> None:
    zone = tmp_path / "zone.txt"
    zone.write_text("far.example. 300 IN A 127.0.0.1\n")
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        code, err = run(capsys, str(zone), "--listen", f"127.0.0.1:{port}")
    assert code == 111
    assert err == f"qmail-sim dns: unable to bind 127.0.0.1:{port}: address already used\n"
