"""Regression test from a differential run against netqmail-1.06's qmail-popup.

qmail-popup.c reads descriptor 0 through a 128-byte substdio buffer. A
client that sends its commands after PASS without waiting for the reply
has them read into that buffer, and qmail-pop3d, which inherits the
descriptor, never sees them: netqmail answers the banner, USER, and
qmail-pop3d's greeting, then qmail-pop3d meets end of input and exits 1.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from server.home import setup

CHECKPASSWORD = """#!/bin/sh
exec 4<&3
data=$(head -c 512 <&4 | tr '\\0' '\\n')
[ "$(printf '%s\\n' "$data" | sed -n 1p)" = joe ] || exit 1
[ "$(printf '%s\\n' "$data" | sed -n 2p)" = secret ] || exit 1
cd "$MAILHOME" || exit 111
exec "$@"
"""


def _session(tmp_path: Path, data: bytes) -> tuple[int, bytes]:
    home = tmp_path / "qmail"
    setup(home)
    user = tmp_path / "joe"
    for sub in ("new", "cur", "tmp"):
        (user / "Maildir" / sub).mkdir(parents=True)
    message = user / "Maildir" / "new" / "1.2.host"
    message.write_bytes(b"Subject: a\n\nbody\n")
    os.utime(message, (1, 1))  # maildir.c skips mail newer than "now"
    checkpassword = tmp_path / "checkpassword"
    checkpassword.write_text(CHECKPASSWORD)
    checkpassword.chmod(0o755)
    argv = [str(home / "bin" / "qmail-popup"), "pop.example", str(checkpassword)]
    argv += [str(home / "bin" / "qmail-pop3d"), "Maildir"]
    proc = subprocess.run(
        argv,
        input=data,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "MAILHOME": str(user)},
        timeout=60,
        check=False,
    )
    return proc.returncode, re.sub(rb"<\d+\.\d+@", b"<P.T@", proc.stdout)


def test_commands_pipelined_after_pass_are_lost(tmp_path: Path) -> None:
    data = b"USER joe\r\nPASS secret\r\nSTAT\r\nQUIT\r\n"
    assert _session(tmp_path, data) == (1, b"+OK <P.T@pop.example>\r\n+OK \r\n+OK \r\n")


def test_only_the_first_128_bytes_are_lost(tmp_path: Path) -> None:
    # The first read() takes 128 bytes; qmail-pop3d reads on from byte 128.
    auth = b"USER joe\r\nPASS secret\r\n"
    filler = b"NOOP\r\n" * ((128 - len(auth)) // 6)
    pad = b"X" * (128 - len(auth) - len(filler) - 2) + b"\r\n"
    data = auth + filler + pad + b"STAT\r\nQUIT\r\n"
    assert len(auth + filler + pad) == 128
    code, out = _session(tmp_path, data)
    # qmail-popup exits 1 after its child, whatever the child did.
    assert (code, out) == (
        1,
        b"+OK <P.T@pop.example>\r\n+OK \r\n+OK \r\n+OK 1 17\r\n+OK \r\n",
    )
