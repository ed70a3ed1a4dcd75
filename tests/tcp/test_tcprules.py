"""tcprules / tcprulescheck: syntax, keys, lookup order; agreement with Debian's ucspi-tcp."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import cdb
from server.programs import ProgramContext, run
from server.runtime import virtual_runtime
from server.tcp.rules import (
    RulesSyntaxError,
    candidate_keys,
    compile_rules,
    expand_address,
    lookup,
    parse_line,
)

HAVE_UCSPI = shutil.which("tcprules") is not None and shutil.which("tcprulescheck") is not None
needs_ucspi = pytest.mark.skipif(not HAVE_UCSPI, reason="ucspi-tcp (Debian) not installed")


def _run(
    name: str, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> tuple[int, bytes, bytes]:
    runtime, _ = virtual_runtime()
    out, err = io.BytesIO(), io.BytesIO()
    ctx = ProgramContext(home=Path("/nonexistent"), runtime=runtime, stderr=err)
    code = run(name, [name, *args], env or {}, io.BytesIO(stdin), out, ctx)
    return code, out.getvalue(), err.getvalue()


# --- the text syntax ----------------------------------------------------------


def test_allow_with_variables() -> None:
    assert compile_rules(b'192.168.:allow,RELAYCLIENT=""\n') == [(b"192.168.", b"+RELAYCLIENT=\0")]
    assert compile_rules(b"k:deny,A=\"1\",B='two'\n") == [(b"k", b"D\0+A=1\0+B=two\0")]
    assert compile_rules(b"k:allow,X=/a,b/\n") == [(b"k", b"+X=a,b\0")]


def test_default_deny_and_host_rules() -> None:
    assert compile_rules(b"=host.name:deny\n:deny\n") == [(b"=host.name", b"D\0"), (b"", b"D\0")]


def test_comments_blank_lines_and_trailing_space() -> None:
    text = b"# comment\n\n1.2.3.4:allow \t \n   \nno colon here\nlast:deny"
    assert compile_rules(text) == [(b"1.2.3.4", b""), (b"last", b"D\0")]


def test_first_colon_ends_the_address() -> None:
    with pytest.raises(RulesSyntaxError) as exc:
        compile_rules(b"a:b:deny\n")
    assert exc.value.line == b"a:b:deny"


@pytest.mark.parametrize(
    "line",
    [
        b"k:allowance",
        b"k:de",
        b'k:allow ,A="1"',
        b"k:allow,A=xvx,B=,",
        b"k:allow,A=,",
        b"k:allow,A",
        b'k:allow,A="1"x',
        b'k:allow,A="unterminated',
    ],
)
def test_syntax_errors(line: bytes) -> None:
    with pytest.raises(RulesSyntaxError) as exc:
        parse_line(line + b"\n")
    assert exc.value.line == line


def test_ranges() -> None:
    assert expand_address(b"1.2.3.4-7") == [b"1.2.3.4", b"1.2.3.5", b"1.2.3.6", b"1.2.3.7"]
    assert expand_address(b"10.1-3.") == [b"10.1.", b"10.2.", b"10.3."]
    assert expand_address(b"9-10.1.2") == [b"9.1.2", b"10.1.2"]
    assert expand_address(b"1.2.3.250-300") == [b"1.2.3.%d" % n for n in range(250, 256)]
    assert expand_address(b"1.2.3.-2") == [b"1.2.3.0", b"1.2.3.1", b"1.2.3.2"]
    assert expand_address(b"1.2.3.7-") == []
    assert expand_address(b"x@1.2.3.4-5") == [b"x@1.2.3.4-5"]
    assert expand_address(b"=a-b.example") == [b"=a-b.example"]
    with pytest.raises(RulesSyntaxError):
        expand_address(b"1.2.3.a-5")
    with pytest.raises(RulesSyntaxError):
        expand_address(b"1.2-3-4.")


def test_lookup_order() -> None:
    keys = list(candidate_keys("1.2.3.4", "mail.example.com", "joe"))
    assert keys == [
        "joe@1.2.3.4",
        "joe@=mail.example.com",
        "1.2.3.4",
        "=mail.example.com",
        "1.2.3.",
        "1.2.",
        "1.",
        "=.example.com",
        "=.com",
        "=",
        "",
    ]
    assert list(candidate_keys("1.2.3.4", None, None)) == ["1.2.3.4", "1.2.3.", "1.2.", "1.", ""]


def test_lookup_decision() -> None:
    text = b'1.2.:allow,RELAYCLIENT=""\n=bad.example:deny\n:deny\n'
    reader = cdb.Reader(cdb.build(compile_rules(text)))
    allow = lookup(reader, "1.2.9.9", None, None)
    assert allow is not None and not allow.deny and allow.env == (("RELAYCLIENT", ""),)
    assert allow.key == "1.2."
    deny = lookup(reader, "1.2.9.9", "bad.example", None)
    assert deny is not None and deny.deny and deny.key == "=bad.example"
    default = lookup(reader, "9.9.9.9", None, None)
    assert default is not None and default.deny and default.key == ""
    assert lookup(cdb.Reader(cdb.build([])), "9.9.9.9", None, None) is None


# --- the programs ---------------------------------------------------------------


def test_tcprules_program(tmp_path: Path) -> None:
    target, tmp = tmp_path / "r.cdb", tmp_path / "r.tmp"
    code, out, err = _run("tcprules", str(target), str(tmp), stdin=b"1.2.3.4:deny\n")
    assert (code, out, err) == (0, b"", b"")
    assert not tmp.exists()
    assert cdb.get(target, b"1.2.3.4") == b"D\0"


def test_tcprules_errors(tmp_path: Path) -> None:
    assert _run("tcprules", "x")[::2] == (100, b"tcprules: usage: tcprules rules.cdb rules.tmp\n")
    code, _, err = _run("tcprules", str(tmp_path / "r.cdb"), str(tmp_path / "no/r.tmp"))
    assert code == 111
    assert (
        err
        == f"tcprules: fatal: unable to create {tmp_path}/no/r.tmp: file does not exist\n".encode()
    )
    (tmp_path / "r.cdb").write_bytes(b"old")
    code, _, err = _run(
        "tcprules", str(tmp_path / "r.cdb"), str(tmp_path / "r.tmp"), stdin=b"x:y\n"
    )
    assert (code, err) == (100, b"tcprules: fatal: unable to parse this line: x:y\n")
    assert (tmp_path / "r.cdb").read_bytes() == b"old"


def test_tcprulescheck_program(tmp_path: Path) -> None:
    rules = tmp_path / "r.cdb"
    text = b'1.2.3.4:allow,A="1",B="2"\n=h.example:deny,C="3"\n'
    cdb.write(rules, compile_rules(text))
    env = {"TCPREMOTEIP": "1.2.3.4"}
    assert _run("tcprulescheck", str(rules), env=env)[:2] == (
        0,
        b"rule 1.2.3.4:\nset environment variable A=1\nset environment variable B=2\n"
        b"allow connection\n",
    )
    env = {"TCPREMOTEIP": "5.5.5.5", "TCPREMOTEHOST": "h.example"}
    assert _run("tcprulescheck", str(rules), env=env)[1] == b"rule =h.example:\ndeny connection\n"
    assert _run("tcprulescheck", str(rules))[1] == b"default:\nallow connection\n"


def test_tcprulescheck_errors(tmp_path: Path) -> None:
    assert _run("tcprulescheck")[::2] == (100, b"tcprulescheck: usage: tcprulescheck rules.cdb\n")
    code, _, err = _run("tcprulescheck", str(tmp_path / "none.cdb"))
    assert code == 111
    expected = f"tcprulescheck: fatal: unable to read {tmp_path}/none.cdb: file does not exist\n"
    assert err == expected.encode()


# --- properties -------------------------------------------------------------------

_line_bytes = st.sampled_from(
    [
        b"1",
        b"2",
        b".",
        b"-",
        b":",
        b"allow",
        b"deny",
        b",",
        b"=",
        b'"',
        b"'",
        b"X",
        b" ",
        b"#",
        b"@",
    ]
)
_lines = st.lists(st.lists(_line_bytes, max_size=12).map(b"".join), max_size=8)


@given(_lines)
def test_compile_never_raises_anything_else(lines: list[bytes]) -> None:
    text = b"\n".join(lines)
    try:
        records = compile_rules(text)
    except RulesSyntaxError:
        return
    # Whole input, or one line at a time: the same records.
    per_line: list[tuple[bytes, bytes]] = []
    for line in lines:
        per_line.extend(compile_rules(line + b"\n"))
    assert records == per_line
    # Trailing bytes after a complete input only add records.
    more = compile_rules(text + b"\n1.2.3.4:deny\n")
    assert more[: len(records)] == records


_octet = st.integers(0, 255)


@given(st.tuples(_octet, _octet, _octet, _octet), st.none() | st.sampled_from(["a.example", "x"]))
def test_lookup_matches_first_candidate(ip4: tuple[int, ...], host: str | None) -> None:
    ip = ".".join(map(str, ip4))
    text = b"%d.:deny\n=a.example:allow\n%s:allow\n" % (ip4[0], ip.encode())
    reader = cdb.Reader(cdb.build(compile_rules(text)))
    decision = lookup(reader, ip, host, None)
    assert decision is not None and decision.key == ip


# --- agreement with Debian's ucspi-tcp ----------------------------------------------

AGREEMENT_RULES = b"""# sample
1.2.3.4-6:allow,X="a b",Y=/q/
=host.example:deny
10.1-2.:deny,Z=""
joe@127.0.0.1:allow,WHO="joe"
joe@=mail.example:deny
=.example.org:allow,SUFFIX="yes"
=:allow,NAMED="1"
192.168.:allow,RELAYCLIENT=""
no colon line
:deny
"""
PROBES: list[dict[str, str]] = [
    {"TCPREMOTEIP": "1.2.3.5"},
    {"TCPREMOTEIP": "10.2.3.4"},
    {"TCPREMOTEIP": "10.3.3.4"},
    {"TCPREMOTEIP": "9.9.9.9", "TCPREMOTEHOST": "host.example"},
    {"TCPREMOTEIP": "127.0.0.1", "TCPREMOTEINFO": "joe"},
    {"TCPREMOTEIP": "127.0.0.2", "TCPREMOTEINFO": "joe", "TCPREMOTEHOST": "mail.example"},
    {"TCPREMOTEIP": "8.8.8.8", "TCPREMOTEHOST": "a.b.example.org"},
    {"TCPREMOTEIP": "8.8.8.8", "TCPREMOTEHOST": "other.net"},
    {"TCPREMOTEIP": "192.168.1.1"},
    {},
]


def _debian_check(rules: Path, env: dict[str, str]) -> tuple[int, bytes]:
    proc = subprocess.run(
        ["tcprulescheck", str(rules)], env={"PATH": os.environ["PATH"], **env}, capture_output=True
    )
    return proc.returncode, proc.stdout


@pytest.mark.external
@needs_ucspi
def test_debian_tcprulescheck_reads_ours(tmp_path: Path) -> None:
    ours = tmp_path / "ours.cdb"
    assert _run("tcprules", str(ours), str(tmp_path / "ours.tmp"), stdin=AGREEMENT_RULES)[0] == 0
    for env in PROBES:
        code, out, _ = _run("tcprulescheck", str(ours), env=env)
        assert _debian_check(ours, env) == (code, out), env


@pytest.mark.external
@needs_ucspi
def test_ours_reads_debian_tcprules(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.cdb"
    subprocess.run(
        ["tcprules", str(theirs), str(tmp_path / "t.tmp")], input=AGREEMENT_RULES, check=True
    )
    ours = tmp_path / "ours.cdb"
    _run("tcprules", str(ours), str(tmp_path / "o.tmp"), stdin=AGREEMENT_RULES)
    assert ours.read_bytes() == theirs.read_bytes()  # same records, same order, same bytes
    for env in PROBES:
        assert _run("tcprulescheck", str(theirs), env=env)[:2] == _debian_check(theirs, env)


@pytest.mark.external
@needs_ucspi
@settings(max_examples=30, deadline=None)
@given(_lines)
def test_debian_tcprules_agrees_on_random_text(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    d = tmp_path_factory.mktemp("r")
    text = b"\n".join(lines) + b"\n"
    proc = subprocess.run(
        ["tcprules", str(d / "t.cdb"), str(d / "t.tmp")],
        input=text,
        capture_output=True,
        timeout=10,
    )
    code, _, err = _run("tcprules", str(d / "o.cdb"), str(d / "o.tmp"), stdin=text)
    assert (code, err) == (proc.returncode, proc.stderr)
    if code == 0:
        assert (d / "o.cdb").read_bytes() == (d / "t.cdb").read_bytes()


_probe_ips = st.sampled_from(["1.2.3.4", "1.2.3.5", "1.2.9.9", "12.0.0.1", "0.0.0.0", "2.1.1.1"])
_probe_hosts = st.none() | st.sampled_from(["a.example", "b.a.example", "x", ""])
_probe_infos = st.none() | st.sampled_from(["joe", ""])
_rule_lines = st.lists(
    st.sampled_from(
        [
            b"1.2.3.4:deny",
            b'1.2.3.4-5:allow,A="1"',
            b"1.2.:allow,B='2'",
            b'1.:deny,C="3"',
            b"12.:allow",
            b"=a.example:deny",
            b'=.example:allow,D="4"',
            b'=:allow,E="5"',
            b'joe@1.2.3.4:allow,F="6"',
            b"joe@=a.example:deny",
            b":deny",
            b':allow,G="7"',
        ]
    ),
    max_size=8,
)


@pytest.mark.external
@needs_ucspi
@settings(max_examples=40, deadline=None)
@given(_rule_lines, _probe_ips, _probe_hosts, _probe_infos)
def test_debian_tcprulescheck_agrees(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    ip: str,
    host: str | None,
    info: str | None,
) -> None:
    d = tmp_path_factory.mktemp("chk")
    rules = d / "r.cdb"
    assert _run("tcprules", str(rules), str(d / "r.tmp"), stdin=b"\n".join(lines) + b"\n")[0] == 0
    env = {"TCPREMOTEIP": ip}
    if host is not None:
        env["TCPREMOTEHOST"] = host
    if info is not None:
        env["TCPREMOTEINFO"] = info
    assert _run("tcprulescheck", str(rules), env=env)[:2] == _debian_check(rules, env)
