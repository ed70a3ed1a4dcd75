"""Our qmail-inject -n against a real netqmail-1.06 qmail-inject, on generated messages.

Set ``QMAILSIM_REF_QMAIL_INJECT`` to a qmail-inject binary and
``QMAILSIM_REF_QMAIL_HOME`` to the home compiled into it (its conf-qmail);
the test copies that home's control files into ours. Date: and Message-ID:
lines and the time/pid in -m VERP senders differ by nature and are masked.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.home import setup
from server.programs import ProgramContext, run
from server.runtime import virtual_runtime

pytestmark = pytest.mark.external

REF = os.environ.get("QMAILSIM_REF_QMAIL_INJECT", "")
REF_HOME = os.environ.get("QMAILSIM_REF_QMAIL_HOME", "")

PIECES = [b"a", b"b@c", b"x.y", b"@", b".", b",", b";", b":", b"<", b">", b" ", b"(c)"]
PIECES += [b"(n(e)st)", b'"q s"', b"[1.2.3.4]", b"[]", b"+", b"\\", b"\t", b"\n ", b"joe+"]
PIECES += [b"@r1,@r2:", b"\x80", b")", b"]", b'"', b"(", b"a" * 30, b"\r"]
NAMES = [b"To", b"Cc", b"Bcc", b"From", b"Sender", b"Reply-To", b"Return-Path", b"Resent-To"]
NAMES += [b"Resent-From", b"Subject", b"X-Foo", b"to ", b"Apparently-To", b"Content-Length"]
values = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=14).map(b"".join),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b" ")),
)
fields = st.lists(
    st.tuples(st.sampled_from(NAMES), values).map(lambda t: t[0] + b":" + t[1]), max_size=5
)
bodies = st.sampled_from([b"", b"\n", b"\nbody\n", b"\nno newline", b"From x\n", b"junk\nmore"])
envs = st.fixed_dictionaries(
    {},
    optional={
        "USER": st.sampled_from(["alice", "a b", "x.", ""]),
        "NAME": st.sampled_from(["Al", "A (b)", '"q"']),
        "QMAILHOST": st.sampled_from(["h", "h+", "h.x"]),
        "QMAILINJECT": st.sampled_from(["c", "s", "f", "i", "r", "m", "cfr"]),
        "QMAILSUSER": st.just("bnc"),
        "QMAILSHOST": st.just("bh"),
    },
)
ARGS = ["-a", "-h", "-H", "-fsnd", "-f", "", "x@y", "a b", "@", "z+@h", "-fq@", "--", "-Q"]
argvs = st.lists(st.sampled_from(ARGS), max_size=4)


def _mask(out: bytes) -> bytes:
    out = re.sub(rb"(?m)^(Resent-)?Date: .*\n", b"", out)
    out = re.sub(rb"(?m)^(Resent-)?Message-ID: <\d+\.\d+\.qmail@", b"MID<", out)
    return re.sub(rb"-\d+\.\d+(-?@)", rb"-T.P\1", out)


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REF and REF_HOME and os.access(REF, os.X_OK)):
        pytest.skip("set QMAILSIM_REF_QMAIL_INJECT and QMAILSIM_REF_QMAIL_HOME to compare")
    home = tmp_path_factory.mktemp("inject") / "qmail"
    setup(home)
    for control in (Path(REF_HOME) / "control").iterdir():
        shutil.copy(control, home / "control" / control.name)
    return home


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(fields, bodies, envs, argvs)
def test_same_as_netqmail(
    homes: Path, fields: list[bytes], body: bytes, env: dict[str, str], argv: list[str]
) -> None:
    message = b"\n".join(fields) + (b"\n" if fields else b"") + body
    runtime, _ = virtual_runtime()
    out, err = io.BytesIO(), io.BytesIO()
    ctx = ProgramContext(home=homes, runtime=runtime, stderr=err)
    code = run("qmail-inject", ["qmail-inject", "-n", *argv], env, io.BytesIO(message), out, ctx)
    ref = subprocess.run(
        [REF, "-n", *argv], input=message, capture_output=True, env=env, timeout=30, check=False
    )
    assert (code, _mask(out.getvalue()), err.getvalue()) == (
        ref.returncode,
        _mask(ref.stdout),
        ref.stderr,
    )
