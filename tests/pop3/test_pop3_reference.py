"""Our qmail-pop3d and qmail-popup against netqmail-1.06's, on generated sessions.

Opt-in: set ``QMAILSIM_REF_QMAIL_POP3D`` and/or ``QMAILSIM_REF_QMAIL_POPUP``
to the real binaries. Each example runs both on identical Maildirs (or with
the same child program) and compares every reply byte, the exit code and,
for qmail-pop3d, what the Maildir holds afterwards.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.programs import ProgramContext, run
from server.runtime import virtual_runtime

pytestmark = pytest.mark.external

POP3D = os.environ.get("QMAILSIM_REF_QMAIL_POP3D", "")
POPUP = os.environ.get("QMAILSIM_REF_QMAIL_POPUP", "")

CONTENTS = [b"Subject: a\n\nbody\n", b"S: x\n\n.dot\n..two\n\nlast", b"", b"\n", b".\n"]
CONTENTS += [b"H: 1\r\n\r\nx\r\n", b"only header", b"A: b\n\n" + b"l\n" * 20]
messages = st.lists(
    st.tuples(st.sampled_from(["new", "cur"]), st.sampled_from(CONTENTS), st.integers(0, 3)),
    max_size=5,
)
VERBS = [b"STAT", b"LIST", b"UIDL", b"RETR", b"TOP", b"DELE", b"RSET", b"LAST", b"NOOP"]
VERBS += [b"XYZ", b"list", b"", b"QUIT"]
ARGS = [b"", b" 1", b" 2", b" 0", b" 9", b" x", b" 1 0", b" 2 1", b" 1  3", b"  2", b" 1x 2"]
ARGS += [b" 18446744073709551617", b" 3 100"]
commands = st.lists(
    st.tuples(st.sampled_from(VERBS), st.sampled_from(ARGS), st.sampled_from([b"\r\n", b"\n"])).map(
        b"".join
    ),
    max_size=10,
)


def _maildir(root: Path, listing: list[tuple[str, bytes, int]], now: int) -> Path:
    md = root / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    for i, (sub, data, age) in enumerate(listing):
        name = f"{1000 + i}.{i}.host" + (":2,S" if sub == "cur" and i % 2 else "")
        path = md / sub / name
        path.write_bytes(data)
        os.utime(path, (now - 100 + age * 10, now - 100 + age * 10))
    stale = md / "tmp" / "stale"
    stale.write_bytes(b"x")
    os.utime(stale, (now - 200000, now - 200000))
    return md


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.skipif(not POP3D, reason="set QMAILSIM_REF_QMAIL_POP3D to compare")
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages, commands, st.booleans())
def test_pop3d_same_as_netqmail(
    tmp_path_factory: pytest.TempPathFactory,
    listing: list[tuple[str, bytes, int]],
    session: list[bytes],
    unfinished: bool,
) -> None:
    base = tmp_path_factory.mktemp("pop3d")
    now = int(time.time())
    ours_md = _maildir(base / "ours", listing, now)
    _maildir(base / "ref", listing, now)
    stdin = b"".join(session) + (b"STAT" if unfinished else b"")
    runtime, _ = virtual_runtime(start=now)
    out = io.BytesIO()
    ctx = ProgramContext(home=base, runtime=runtime, stderr=io.BytesIO())
    code = run("qmail-pop3d", ["qmail-pop3d", str(ours_md)], {}, io.BytesIO(stdin), out, ctx)
    ref = subprocess.run(
        [POP3D, "Maildir"], cwd=base / "ref", input=stdin, capture_output=True, check=False
    )
    assert (code, out.getvalue()) == (ref.returncode, ref.stdout)
    assert _tree(base / "ours") == _tree(base / "ref")


CHILD = """#!/bin/sh
echo "child argv: $*"
sed 's/<[0-9]*\\.[0-9]*@/<P.T@/' <&3 | od -An -c
echo "stderr line" >&2
exit $CHILD_EXIT
"""
POPUP_VERBS = [b"USER", b"PASS", b"APOP", b"QUIT", b"NOOP", b"STAT", b"user", b"", b"apop"]
POPUP_ARGS = [b"", b" ", b" bob", b" bob  secret", b"  x y", b" a\0b", b" " + b"z" * 300]
popup_commands = st.lists(
    st.tuples(
        st.sampled_from(POPUP_VERBS),
        st.sampled_from(POPUP_ARGS),
        st.sampled_from([b"\r\n", b"\n"]),
    ).map(b"".join),
    max_size=6,
)


def _mask(out: bytes) -> bytes:
    return re.sub(rb"<\d+\.\d+@", b"<P.T@", out)


@pytest.mark.skipif(not POPUP, reason="set QMAILSIM_REF_QMAIL_POPUP to compare")
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(popup_commands, st.sampled_from(["0", "1", "111"]))
def test_popup_same_as_netqmail(
    tmp_path_factory: pytest.TempPathFactory, session: list[bytes], child_exit: str
) -> None:
    child = tmp_path_factory.mktemp("popup") / "child"
    child.write_text(CHILD)
    child.chmod(0o755)
    env = {"CHILD_EXIT": child_exit, "PATH": os.environ.get("PATH", "")}
    stdin = b"".join(session)
    ours_argv = [sys.executable, "-m", "server", "--home", str(child.parent), "qmail-popup"]
    results = [
        subprocess.run(
            [*argv, "h.example", str(child), "arg"],
            input=stdin,
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        for argv in (ours_argv, [POPUP])
    ]
    ours, ref = ((r.returncode, _mask(r.stdout)) for r in results)
    assert ours == ref
