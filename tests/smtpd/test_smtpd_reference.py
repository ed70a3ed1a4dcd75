"""Differential test: our qmail-smtpd against a real netqmail-1.06 qmail-smtpd.

Skipped unless QMAILSIM_REFERENCE_SMTPD names a qmail-smtpd binary built from
netqmail-1.06 and QMAILSIM_REFERENCE_HOME the directory compiled into it as
conf-qmail (the test writes that home's control/ files). Both programs get
the same random sessions, the same environment and the same QMAILQUEUE
script, which records the message and the envelope each hands to the queue;
replies, exit codes, messages and envelopes must agree byte for byte, after
masking the clock ("250 ok <time> qp <pid>", the Received line's date).

To build one (nothing of it goes into this repository):
    cp -r netqmail-1.06 /tmp/q && cd /tmp/q && echo /tmp/qhome > conf-qmail
    make qmail-smtpd
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from server.home import setup
from server.programs import ProgramContext
from server.runtime import real_runtime
from server.smtpd.program import main
from tests import fakeqq

REFERENCE = os.environ.get("QMAILSIM_REFERENCE_SMTPD", "")
REFERENCE_HOME = os.environ.get("QMAILSIM_REFERENCE_HOME", "")
#: Patches the reference binary was built with (e.g. "smtpd-relay-reject").
REFERENCE_PATCHES = frozenset(os.environ.get("QMAILSIM_REFERENCE_PATCHES", "").split())

pytestmark = [
    pytest.mark.external,
    pytest.mark.skipif(
        not (REFERENCE and REFERENCE_HOME),
        reason="set QMAILSIM_REFERENCE_SMTPD and QMAILSIM_REFERENCE_HOME to a real qmail-smtpd",
    ),
]

CONTROLS = {
    "me": "mx.example.org\n",
    "rcpthosts": "example.org\n.sub.example.org\n",
    "badmailfrom": "@bad.example\nspam@x.example\n",
    "databytes": "300\n",
}
# Real qmail-smtpd starts qmail-queue before "354" and leaves it without an
# envelope when the message is refused (hops, databytes) or the client is
# cut off (bare LF); ours starts it only for a message it will queue. So
# the script keeps only runs that received an envelope.
FAKEQQ = """#!/bin/sh
cat > "$FAKEQQ_DIR/m.$$"
cat <&1 > "$FAKEQQ_DIR/e.$$"
test -s "$FAKEQQ_DIR/e.$$" || rm -f "$FAKEQQ_DIR/m.$$" "$FAKEQQ_DIR/e.$$"
exit 0
"""

_CLOCK = re.compile(rb"250 ok \d+ qp \d+|; \d+ \w{3} \d{4} \d\d:\d\d:\d\d -0000\n")

_WORDS = [
    b"HELO x",
    b"EHLO  y z",
    b"MAIL FROM:<a@b>",
    b"MAIL FROM:<spam@X.example>",
    b"MAIL FROM: c@bad.example SIZE=1",
    b"RCPT TO:<b@example.org>",
    b"RCPT TO:<b@a.sub.example.org>",
    b"RCPT TO:<@r:x@far>",
    b'RCPT TO:<"x@far"@example.org>',
    b"RCPT TO:<u@[127.0.0.1]>",
    b"RCPT TO:b@example.org.",
    b"RCPT TO:<b%far@EXAMPLE.org>",
    b"DATA",
    b"RSET",
    b"NOOP",
    b"VRFY",
    b"HELP",
    b"QUIT",
    b".",
    b"..",
    b".x",
    b"Received: x",
    b"Delivered-To: y",
    b"",
    b"\x00",
    b"\r",
    b"\n",
    b"x" * 120,
    b"\xff\xfe",
]
_sessions = st.lists(st.one_of(st.sampled_from(_WORDS), st.binary(max_size=8)), max_size=30).map(
    lambda parts: b"\r\n".join(parts) + b"\r\n"
)


def _masked(data: bytes) -> bytes:
    return _CLOCK.sub(b"<clock>", data)


def _run_reference(data: bytes, env: dict[str, str], spool: Path) -> tuple[int, bytes]:
    done = subprocess.run([REFERENCE], input=data, env=env, capture_output=True, timeout=30)
    return done.returncode, done.stdout


def _run_ours(home: Path, data: bytes, env: dict[str, str]) -> tuple[int, bytes]:
    out = io.BytesIO()
    ctx = ProgramContext(
        home=home,
        runtime=real_runtime(),
        stderr=io.BytesIO(),
        patches=REFERENCE_PATCHES,
        inprocess=False,
    )
    return main(["qmail-smtpd"], env, io.BytesIO(data), out, ctx), out.getvalue()


def _spooled(spool: Path) -> list[tuple[bytes, bytes]]:
    return fakeqq.spooled(spool, _masked)


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    base = tmp_path_factory.mktemp("reference")
    ours = base / "ours"
    setup(ours, me="mx.example.org")
    theirs = Path(REFERENCE_HOME)
    (theirs / "control").mkdir(parents=True, exist_ok=True)
    for home in (ours, theirs):
        shutil.rmtree(home / "control")
        (home / "control").mkdir()
        for name, text in CONTROLS.items():
            (home / "control" / name).write_text(text)
    script, spool = fakeqq.install(base, FAKEQQ)
    return ours, theirs, script, spool


@settings(
    max_examples=int(os.environ.get("QMAILSIM_REFERENCE_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    _sessions,
    st.sampled_from([{}, {"RELAYCLIENT": "-r"}, {"TCPREMOTEHOST": "x", "TCPREMOTEINFO": ""}]),
)
def test_same_as_netqmail(
    homes: tuple[Path, Path, Path, Path], data: bytes, extra: dict[str, str]
) -> None:
    ours, _, script, spool = homes
    env = {
        "QMAILQUEUE": str(script),
        "FAKEQQ_DIR": str(spool),
        "TCPREMOTEIP": "127.0.0.1",
        "TCPLOCALIP": "127.0.0.1",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **extra,
    }
    their_code, their_out = _run_reference(data, env, spool)
    their_queue = _spooled(spool)
    our_code, our_out = _run_ours(ours, data, env)
    our_queue = _spooled(spool)
    assert _masked(our_out) == _masked(their_out)
    assert our_code == their_code
    assert our_queue == their_queue
    event("queued" if their_queue else "not queued")


FULL = (
    b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<u@[127.0.0.1]>\r\n"
    b"DATA\r\nReceived: x\r\nSubject: s\r\n\r\n..dot\r\n.\rx\r\na\rb\r\n.\r\n"
    b"MAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" + b"y" * 2500 + b"\r\n.\r\n"
    b"MAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" + b"Received: x\r\n" * 100 + b".\r\n"
    b"MAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
    + b"delivered-to: x\r\n"
    * 99
    + b"\r\n.\r\n"
    b"MAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nbare\nlf\r\n.\r\n"
)


def test_a_full_session_queues_the_same(homes: tuple[Path, Path, Path, Path]) -> None:
    ours, _, script, spool = homes
    env = {
        "QMAILQUEUE": str(script),
        "FAKEQQ_DIR": str(spool),
        "TCPREMOTEIP": "127.0.0.1",
        "DATABYTES": "2000",
    }
    their_code, their_out = _run_reference(FULL, env, spool)
    their_queue = _spooled(spool)
    our_code, our_out = _run_ours(ours, FULL, env)
    our_queue = _spooled(spool)
    assert len(their_queue) == 2
    for text in (b"552 sorry", b"554 too many hops", b"451 See"):
        assert text in their_out
    assert (_masked(our_out), our_code, our_queue) == (_masked(their_out), their_code, their_queue)
