"""Differential test: our qmail-qmtpd and qmail-qmqpd against netqmail-1.06's.

Uses the real netqmail-1.06 home at /var/qmail-ref (QMAILSIM_REFERENCE_QMAIL
names another) and skips without it. Both programs get the same bytes on
stdin, the same environment and the same QMAILQUEUE script (netqmail's
qmail.c honours QMAILQUEUE), which records the message and the envelope each
queue run is handed; replies, exit codes, messages and envelopes must agree
byte for byte, after masking the clock (``Kok <time> qp <pid>``, the Received
line's date). Nothing is queued in the reference home. qmail-qmtpd reads
control/rcpthosts there, which scenario runs rewrite: ours is given a copy
just before each run, with DIR held as a scenario holds it
(harness.targets.qmail.holding), and DATABYTES is always set.
"""

from __future__ import annotations

import io
import os
import re
import select
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.targets.qmail import holding
from server.home import make_mini, setup
from server.programs import ProgramContext, run
from server.runtime import real_runtime
from tests import fakeqq
from tests.qmqp.helpers import addresses, bodies, qmqp, qmtp
from tests.subprocs import stop
from tests.targets import REFERENCE, needs_reference

pytestmark = [
    pytest.mark.external,
    needs_reference("qmail-qmtpd"),
]

# Keeps only runs that were handed a whole envelope (it ends in two NULs):
# a run qmail-qmtpd gives up on (qmail_fail) sees its input end early.
FAKEQQ = """#!/bin/sh
cat > "$FAKEQQ_DIR/m.$$"
cat <&1 > "$FAKEQQ_DIR/e.$$"
test "$(tail -c 2 "$FAKEQQ_DIR/e.$$" | od -An -tx1 | tr -d ' \\n')" = 0000 ||
  rm -f "$FAKEQQ_DIR/m.$$" "$FAKEQQ_DIR/e.$$"
exit 0
"""

_CLOCK = re.compile(rb"\d+:Kok \d+ qp \d+,|; \d+ \w{3} \d{4} \d\d:\d\d:\d\d -0000\n")


def _masked(data: bytes) -> bytes:
    return _CLOCK.sub(b"<clock>", data)


def _spooled(spool: Path) -> list[tuple[bytes, bytes]]:
    return fakeqq.spooled(spool, _masked)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("qmqp-reference")
    ours = base / "ours"
    setup(ours, me="mx.example.org")
    script, spool = fakeqq.install(base, FAKEQQ)
    return ours, script, spool


def _same_rcpthosts(ours: Path) -> None:
    for name in ("rcpthosts", "morercpthosts.cdb"):
        theirs = REFERENCE / "control" / name
        (ours / "control" / name).unlink(missing_ok=True)
        if theirs.exists():
            shutil.copyfile(theirs, ours / "control" / name)


def _compare(
    world: tuple[Path, Path, Path], program: str, data: bytes, extra: dict[str, str]
) -> None:
    ours, script, spool = world
    env = {
        "QMAILQUEUE": str(script),
        "FAKEQQ_DIR": str(spool),
        "TCPREMOTEIP": "127.0.0.1",
        "TCPLOCALIP": "127.0.0.1",
        "DATABYTES": "0",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **extra,
    }
    with holding(REFERENCE):  # no scenario on qmail:DIR rewrites them meanwhile
        _same_rcpthosts(ours)
        done = subprocess.run(
            [str(REFERENCE / "bin" / program)], input=data, env=env, capture_output=True, timeout=30
        )
    theirs = (done.returncode, _masked(done.stdout), _spooled(spool))
    out = io.BytesIO()
    ctx = ProgramContext(home=ours, runtime=real_runtime(), stderr=io.BytesIO(), inprocess=False)
    code = run(program, [program], env, io.BytesIO(data), out, ctx)
    assert (code, _masked(out.getvalue()), _spooled(spool)) == theirs


_qmtp_sessions = st.lists(
    st.tuples(bodies, addresses, st.lists(addresses, max_size=3), st.sampled_from([b"\n", b"\r"])),
    min_size=1,
    max_size=3,
).map(lambda ms: b"".join(qmtp(b, s, r, f) for b, s, r, f in ms))
_damage = st.one_of(
    st.just(lambda d: d),
    st.just(lambda d: d[: len(d) // 2]),
    st.just(lambda d: d + b"0:"),
    st.just(lambda d: d[:-1] + b";"),
    st.just(lambda d: b"9" * 12 + b":" + d),
)
_settings = settings(
    max_examples=int(os.environ.get("QMAILSIM_REFERENCE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _corrupt(data: bytes, at: int, byte: bytes) -> bytes:
    """``data`` with the byte at ``at`` (if any) replaced."""
    return data[:at] + byte + data[at + 1 :] if at < len(data) else data


@_settings
@given(
    _qmtp_sessions,
    _damage,
    st.sampled_from([{}, {"RELAYCLIENT": "@example.org"}, {"DATABYTES": "12"}]),
    st.integers(min_value=0, max_value=400),
    st.sampled_from([b":", b",", b"0", b"9", b"\r", b"\n", b"\0", b"\xff"]),
)
def test_qmtpd_same_as_netqmail(
    world: tuple[Path, Path, Path],
    data: bytes,
    damage: object,
    extra: dict[str, str],
    at: int,
    byte: bytes,
) -> None:
    assert callable(damage)
    _compare(world, "qmail-qmtpd", _corrupt(damage(data), at, byte), extra)


@_settings
@given(
    bodies,
    addresses,
    st.lists(addresses, max_size=3),
    _damage,
    st.integers(min_value=0, max_value=200),
    st.sampled_from([b":", b",", b"0", b"9", b"\0"]),
)
def test_qmqpd_same_as_netqmail(
    world: tuple[Path, Path, Path],
    body: bytes,
    sender: bytes,
    rcpts: list[bytes],
    damage: object,
    at: int,
    byte: bytes,
) -> None:
    assert callable(damage)
    data = _corrupt(damage(qmqp(body, sender, rcpts)), at, byte)
    _compare(world, "qmail-qmqpd", data, {"TCPREMOTEHOST": "c.example"})


def test_a_long_qmtp_session_queues_the_same(world: tuple[Path, Path, Path]) -> None:
    data = b"".join(
        qmtp(
            b"Subject: %d\r\n\r\n" % i + b"line\r\n" * 300,
            b"a@b",
            [b"bob@example.org", b"x@far"],
            b"\r",
        )
        for i in range(5)
    )
    _compare(world, "qmail-qmtpd", data, {"TCPREMOTEINFO": "who"})


@pytest.mark.skipif(os.geteuid() != 0, reason="QMQP's port 628 needs root")
def test_our_qmqpc_hands_mail_to_netqmails_qmqpd(
    world: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A mini-qmail home of ours (qmail-inject, then qmail-qmqpc) and the real
    qmail-qmqpd under Debian's tcpserver, which records what it would queue."""
    tcpserver = shutil.which("tcpserver")
    if tcpserver is None:
        pytest.skip("tcpserver (Debian package ucspi-tcp) is not installed")
    _, script, spool = world
    client = tmp_path / "client"
    setup(client, me="client.example.org")
    make_mini(client, ["127.0.62.10"])
    env = {**os.environ, "QMAILQUEUE": str(script), "FAKEQQ_DIR": str(spool)}
    cmd = [
        tcpserver,
        "-v",
        "-R",
        "-H",
        "127.0.62.10",
        "628",
        str(REFERENCE / "bin" / "qmail-qmqpd"),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 20)
        assert ready and b"status: 0/" in proc.stderr.readline()  # it listens
        done = subprocess.run(
            [str(client / "bin" / "qmail-inject"), "bob@example.org", "x@far.example"],
            input=b"Subject: mini\n\nhi\n",
            env={**os.environ, "QMAILUSER": "alice"},
            capture_output=True,
            timeout=60,
        )
        # qmail-qmqpd answers K only after qmail_close(): the spool is written
        assert done.returncode == 0, done.stderr
    finally:
        stop(proc)
    [(message, envelope)] = _spooled(spool)
    assert message.startswith(
        b"Received: from unknown (127.0.0.1)\n  by 127.0.62.10 with QMQP<clock>"
    )
    assert b"\nSubject: mini\n\nhi\n" in message
    assert envelope == b"Falice@client.example.org\0Tbob@example.org\0Tx@far.example\0\0"
