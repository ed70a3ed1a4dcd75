"""Control files: every default (qmail-control(5)) and each reading rule of control.c."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.control import CONTROLS, SPECS, ControlDir
from server.errors import TempFail

ME = "mx.example.org"

# qmail-control(5)'s table, written out independently of server.control:
# "me" stands for the first line of control/me; None for "(none)".
DEFAULTS: dict[str, object] = {
    "badmailfrom": None,
    "bouncefrom": "MAILER-DAEMON",
    "bouncehost": "me",
    "concurrencylocal": 10,
    "concurrencyremote": 20,
    "databytes": 0,
    "defaultdomain": "me",
    "defaulthost": "me",
    "doublebouncehost": "me",
    "doublebounceto": "postmaster",
    "envnoathost": "me",
    "helohost": "me",
    "idhost": "me",
    "localiphost": "me",
    "locals": ["me"],
    "me": None,
    "morercpthosts": None,
    "percenthack": None,
    "plusdomain": "me",
    "qmqpservers": None,
    "queuelifetime": 604800,
    "rcpthosts": None,
    "smtpgreeting": "me",
    "smtproutes": None,
    "timeoutconnect": 60,
    "timeoutremote": 1200,
    "timeoutsmtpd": 1200,
    "virtualdomains": None,
}
# Without control/me, the "me" defaults fall back to showctl's placeholder
# names (qmail-showctl.c) — and the programs' own compiled-in names.
NO_ME: dict[str, object] = {
    "bouncehost": "bouncehost",
    "defaultdomain": "defaultdomain",
    "locals": None,
    "me": "undefined! Uh-oh",  # showctl's sentence; programs use ControlDir.me (None)
    "smtpgreeting": "smtpgreeting",
}


def _with_me(value: object) -> object:
    if value == "me":
        return ME
    if value == ["me"]:
        return [ME]
    return value


@pytest.fixture
def control(tmp_path: Path) -> Path:
    path = tmp_path / "control"
    path.mkdir()
    return path


def test_table_covers_every_control_file() -> None:
    assert [spec.name for spec in CONTROLS] == sorted(DEFAULTS, key=list(SPECS).index)
    assert set(SPECS) == set(DEFAULTS)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_default_with_me(control: Path, name: str) -> None:
    (control / "me").write_text(ME + "\n")
    expected = ME if name == "me" else _with_me(DEFAULTS[name])
    assert ControlDir(control).get(name) == expected


@pytest.mark.parametrize("name", sorted(NO_ME))
def test_default_without_me(control: Path, name: str) -> None:
    ctl = ControlDir(control)
    assert ctl.get(name) == NO_ME[name]
    assert ctl.me is None


def test_readline_rules(control: Path) -> None:
    (control / "helohost").write_bytes(b"helo.example \t \nsecond line\n")
    (control / "smtpgreeting").write_bytes(b"no newline at end")
    (control / "idhost").write_bytes(b"")
    (control / "bouncefrom").write_bytes(b"  leading kept\r\n")
    ctl = ControlDir(control)
    assert ctl.readline("helohost") == "helo.example"
    assert ctl.readline("smtpgreeting") == "no newline at end"
    assert ctl.readline("idhost") == ""  # empty file: a value, not "missing"
    assert ctl.get("idhost") == ""
    assert ctl.readline("bouncefrom") == "  leading kept\r"  # only \n, space, tab go
    assert ctl.readline("defaulthost") is None


def test_readint_rules(control: Path) -> None:
    ctl = ControlDir(control)
    for text, expected in [
        ("1000\n", 1000),
        ("1000 bytes\n", 1000),
        ("  1000\n", 20),  # scan_ulong takes no leading space: no digits, default
        ("-5\n", 20),
        ("\n", 20),
        ("", 20),
        ("0\n", 0),
        ("007\n", 7),
        ("12\n34\n", 12),
    ]:
        (control / "concurrencyremote").write_text(text)
        assert ctl.get("concurrencyremote") == expected, text


def test_readfile_rules(control: Path) -> None:
    (control / "rcpthosts").write_bytes(
        b"# comment\nexample.org  \n\n   \n\t\n#another\n a.example\nlast.example"
    )
    ctl = ControlDir(control)
    assert ctl.get("rcpthosts") == ["example.org", " a.example", "last.example"]
    (control / "rcpthosts").write_bytes(b"")
    assert ctl.get("rcpthosts") == []  # empty file: read, no entries
    (control / "rcpthosts").write_bytes(b"# only comments\n")
    assert ctl.get("rcpthosts") == []


def test_locals_falls_back_to_me_only_when_missing(control: Path) -> None:
    (control / "me").write_text(ME + "\n")
    (control / "locals").write_text("")
    assert ControlDir(control).get("locals") == []


def test_unreadable_is_a_temporary_failure(control: Path) -> None:
    # We run as root, so chmod 000 would not stop us: a directory in place of
    # the file makes read fail (EISDIR), as an unreadable file fails in qmail.
    for name in ("databytes", "helohost", "rcpthosts"):
        (control / name).mkdir()
        with pytest.raises(TempFail) as exc:
            ControlDir(control).get(name)
        assert f"control/{name}" in exc.value.text


def test_unreadable_me(control: Path) -> None:
    (control / "me").mkdir()
    with pytest.raises(TempFail):
        ControlDir(control).get("bouncehost")


def test_permission_denied_is_temporary(control: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: str) -> bytes:
        raise PermissionError(13, "Permission denied", path)

    (control / "me").write_text(ME + "\n")
    monkeypatch.setattr("server.filecache.read_bytes", denied)
    with pytest.raises(TempFail):
        ControlDir(control).get("locals")


def test_empty_me_feeds_empty_strings(control: Path) -> None:
    (control / "me").write_text("\n")
    ctl = ControlDir(control)
    assert ctl.get("bouncehost") == ""
    assert ctl.get("locals") == [""]


def test_a_file_that_cannot_be_read_is_temporary(control: Path) -> None:
    (control / "me").write_text(ME + "\n")
    (control / "locals").mkdir()  # open succeeds, read fails (EISDIR), as control.c sees it
    with pytest.raises(TempFail):
        ControlDir(control).get("locals")


# --- properties: our reader against a model of control.c's byte loop ---------


def _strip(line: bytes) -> bytes:
    while line and line[-1:] in (b"\n", b" ", b"\t"):
        line = line[:-1]
    return line


def _model_readfile(data: bytes) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(data):  # getln: up to and including '\n', or the rest
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = _strip(data[pos:end])
        pos = end
        if line and line[:1] != b"#":
            out.append(line)
    return out


def _model_readline(data: bytes) -> bytes:
    end = data.find(b"\n")
    return _strip(data if end < 0 else data[: end + 1])


_text = st.lists(st.sampled_from([b"a", b"#", b" ", b"\t", b"\n", b"\r", b"7", b"\xe9"])).map(
    b"".join
)


@given(_text)
def test_readfile_property(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    control = tmp_path_factory.mktemp("c")
    (control / "smtproutes").write_bytes(data)
    got = ControlDir(control).readfile("smtproutes")
    assert got is not None
    assert [line.encode("latin-1") for line in got] == _model_readfile(data)


@given(_text)
def test_readline_and_readint_property(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    control = tmp_path_factory.mktemp("c")
    (control / "x").write_bytes(data)
    ctl = ControlDir(control)
    line = ctl.readline("x")
    assert line is not None and line.encode("latin-1") == _model_readline(data)
    digits = len(line) - len(line.lstrip("0123456789"))
    assert ctl.readint("x", -1) == (int(line[:digits]) if digits else -1)
