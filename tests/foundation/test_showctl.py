"""qmail-showctl: output byte for byte as qmail-showctl.c prints it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from server import showctl

from .helpers import run_program

DEFAULTS_TAIL = """
badmailfrom: (Default.) Any MAIL FROM is allowed.

bouncefrom: (Default.) Bounce user name is MAILER-DAEMON.

bouncehost: (Default.) Bounce host name is mx.example.org.

concurrencylocal: (Default.) Local concurrency is 10.

concurrencyremote: (Default.) Remote concurrency is 20.

databytes: (Default.) SMTP DATA limit is 0 bytes.

defaultdomain: Default domain name is example.org.

defaulthost: (Default.) Default host name is mx.example.org.

doublebouncehost: (Default.) 2B recipient host: mx.example.org.

doublebounceto: (Default.) 2B recipient user: postmaster.

envnoathost: (Default.) Presumed domain name is mx.example.org.

helohost: (Default.) SMTP client HELO host name is mx.example.org.

idhost: (Default.) Message-ID host name is mx.example.org.

localiphost: (Default.) Local IP address becomes mx.example.org.

locals:
Messages for mx.example.org are delivered locally.

me: My name is mx.example.org.

percenthack: (Default.) The percent hack is not allowed.

plusdomain: Plus domain name is example.org.

qmqpservers: (Default.) No QMQP servers.

queuelifetime: (Default.) Message lifetime in the queue is 604800 seconds.

rcpthosts:
SMTP clients may send messages to recipients at mx.example.org.

morercpthosts: (Default.) No effect.

morercpthosts.cdb: (Default.) No effect.

smtpgreeting: (Default.) SMTP greeting: 220 mx.example.org.

smtproutes: (Default.) No artificial SMTP routes.

timeoutconnect: (Default.) SMTP client connection timeout is 60 seconds.

timeoutremote: (Default.) SMTP client data timeout is 1200 seconds.

timeoutsmtpd: (Default.) SMTP server data timeout is 1200 seconds.

virtualdomains: (Default.) No virtual domains.
""".replace(":\n", ": \n")


def _header(home: Path) -> str:
    gid = home.stat().st_gid
    return (
        f"qmail home directory: {home}.\n"
        "user-ext delimiter: -.\n"
        "paternalism (in decimal): 2.\n"
        "silent concurrency limit: 120.\n"
        "subdirectory split: 23.\n"
        "user ids: 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000.\n"
        f"group ids: {gid}, {gid}.\n"
    )


def test_fresh_home_byte_exact(home: Path) -> None:
    result = run_program(home, "qmail-showctl")
    assert result.code == 0
    assert result.out.decode() == _header(home) + DEFAULTS_TAIL


def _show(home: Path) -> str:
    result = run_program(home, "qmail-showctl")
    assert result.code == 0, result
    return result.out.decode()


def test_values_safeput_and_lists(home: Path) -> None:
    control = home / "control"
    (control / "databytes").write_text("1000junk\n")
    (control / "concurrencyremote").write_text("many\n")  # no digits: the default
    (control / "smtproutes").write_bytes(b"a\x01b:x\n# comment\n\n   \nd:  \n")
    (control / "bouncefrom").write_bytes(b"bounce\xe9  \t\nsecond\n")
    (control / "badmailfrom").write_text("@spam.example\n")
    out = _show(home)
    assert "\ndatabytes: SMTP DATA limit is 1000 bytes.\n" in out
    assert "\nconcurrencyremote: (Default.) Remote concurrency is 20.\n" in out
    assert "\nsmtproutes: \nSMTP route: a?b:x\nSMTP route: d:\n\n" in out
    assert "\nbouncefrom: Bounce user name is bounce?.\n" in out
    assert "\nbadmailfrom: \n@spam.example not accepted in MAIL FROM.\n" in out


def test_int_overflow_is_clamped_like_a_c_int(home: Path) -> None:
    (home / "control" / "databytes").write_text("3000000000\n")  # > INT_MAX
    assert "\ndatabytes: SMTP DATA limit is 0 bytes.\n" in _show(home)


def test_empty_file_is_not_missing(home: Path) -> None:
    (home / "control" / "helohost").write_text("")
    (home / "control" / "locals").write_text("")
    out = _show(home)
    assert "\nhelohost: SMTP client HELO host name is .\n" in out
    assert "\nlocals: \n\nme:" in out


def test_unreadable_file(home: Path) -> None:
    (home / "control" / "idhost").mkdir()  # reading a directory fails: EISDIR
    (home / "control" / "virtualdomains").mkdir()
    (home / "control" / "timeoutsmtpd").mkdir()
    out = _show(home)
    assert "\nidhost: Oops! Trouble reading this file.\n" in out
    assert "\nvirtualdomains: Oops! Trouble reading this file.\n" in out
    assert "\ntimeoutsmtpd: Oops! Trouble reading this file.\n" in out


def test_no_me(home: Path) -> None:
    (home / "control" / "me").unlink()
    out = _show(home)
    assert "\nme: (Default.) My name is undefined! Uh-oh.\n" in out
    assert "\nbouncehost: (Default.) Bounce host name is bouncehost.\n" in out
    assert "\nsmtpgreeting: (Default.) SMTP greeting: 220 smtpgreeting.\n" in out


def test_unreadable_me_stops(home: Path) -> None:
    (home / "control" / "me").unlink()
    (home / "control" / "me").mkdir()
    result = run_program(home, "qmail-showctl")
    assert result.code == 111
    assert result.out.decode().endswith(
        f"group ids: {home.stat().st_gid}, {home.stat().st_gid}.\nOops! Trouble reading control/me."
    )


def test_no_rcpthosts_changes_morercpthosts_wording(home: Path) -> None:
    (home / "control" / "rcpthosts").unlink()
    (home / "control" / "morercpthosts").write_text("b.example\n")
    out = _show(home)
    assert "\nrcpthosts: (Default.) SMTP clients may send messages to any recipient.\n" in out
    assert (
        "\nmorercpthosts: \nNo rcpthosts; doesn't matter that morercpthosts has b.example.\n" in out
    )
    assert "\nmorercpthosts.cdb: Oops! morercpthosts exists but morercpthosts.cdb doesn't.\n" in out
    (home / "control" / "morercpthosts").unlink()
    out = _show(home)
    assert "\nmorercpthosts: (Default.) No rcpthosts; morercpthosts is irrelevant.\n" in out


def test_morercpthosts_cdb_checks(home: Path) -> None:
    control = home / "control"
    (control / "morercpthosts.cdb").write_bytes(b"\0" * 2048)
    assert "Oops! morercpthosts.cdb exists but morercpthosts doesn't.\n" in _show(home)
    (control / "morercpthosts").write_text("a.example\n")
    os.utime(control / "morercpthosts", (2000, 2000))
    os.utime(control / "morercpthosts.cdb", (1000, 1000))
    out = _show(home)
    assert "\nmorercpthosts: \nSMTP clients may send messages to recipients at a.example.\n" in out
    assert "\nmorercpthosts.cdb: Oops! morercpthosts.cdb is older than morercpthosts.\n" in out
    os.utime(control / "morercpthosts.cdb", (2000, 2000))
    assert "Modified recently enough; hopefully up to date.\n" in _show(home)


def test_unknown_files_sorted_at_the_end(home: Path) -> None:
    (home / "control" / "zeta").write_text("")
    (home / "control" / "alpha").write_text("")
    out = _show(home)
    assert out.endswith(
        "No virtual domains.\n\nalpha: I have no idea what this file does.\n"
        "\nzeta: I have no idea what this file does.\n"
    )


def test_missing_home_and_control(tmp_path: Path, home: Path) -> None:
    result = run_program(tmp_path / "nowhere", "qmail-showctl")
    assert result.code == 111
    assert result.out.decode().endswith(f"Oops! Unable to chdir to {tmp_path / 'nowhere'}.\n")
    shutil.rmtree(home / "control")
    result = run_program(home, "qmail-showctl")
    assert result.code == 111
    assert result.out.decode().endswith("Oops! Unable to chdir to control.\n")


def test_safe() -> None:
    assert showctl.safe("a\tb\x7f~ ") == "a?b?~ "
