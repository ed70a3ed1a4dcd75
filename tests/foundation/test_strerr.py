"""server.strerr: strerr_die.c's line shapes and error_str.c's wording."""

from __future__ import annotations

import errno
import io

from server import strerr


def test_die_writes_parts_and_newline_and_returns_code() -> None:
    with io.BytesIO() as err:
        assert strerr.die(err, 100, "prog: usage: prog ", b"arg") == 100
        assert err.getvalue() == b"prog: usage: prog arg\n"


def test_die_sys_appends_error_str() -> None:
    with io.BytesIO() as err:
        code = strerr.die_sys(err, 111, "x: fatal: ", "unable to read f: ", err=errno.ENOENT)
        assert code == 111
        assert err.getvalue() == b"x: fatal: unable to read f: file does not exist\n"


def test_undecodable_file_names_are_written_as_they_came() -> None:
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    with io.BytesIO() as err:
        strerr.warn(err, "unable to open ", name)
        assert err.getvalue() == b"unable to open caf\xe9\n"


def test_error_str_edges() -> None:
    assert strerr.error_str(0) == "no error"
    assert strerr.error_str(None) == "unknown error"
    assert strerr.error_str(errno.EWOULDBLOCK) == "temporary failure"  # EAGAIN's text wins
