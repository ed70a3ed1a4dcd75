"""maildirwatch, qbiff, qreceipt and qsmhook against netqmail-1.06's own
binaries: the same input to both, the same bytes out. Skipped where no
reference qmail is installed (tests/targets.py: /var/qmail-ref or
``$QMAILSIM_REFERENCE_QMAIL``).

qbiff reads the fixed /var/run/utmp and writes under /dev, so the reference
one runs in a private mount namespace (``unshare -m``, root only) with the
test's utmp file and /dev stand-in mounted over them; ours is pointed at the
same files through ``$QMAILSIM_UTMP`` and ``$QMAILSIM_DEV``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from server.local.maildirwatch import CLEAR, summary
from tests.targets import REFERENCE, needs_reference

from .test_maildirwatch import FIRST
from .test_qbiff import MESSAGE as BIFF_MESSAGE
from .test_qbiff import make_world
from .test_qreceipt_qsmhook import MESSAGE as RECEIPT_MESSAGE
from .test_qreceipt_qsmhook import QENV

pytestmark = needs_reference("qsmhook")


def both(
    name: str,
    args: Sequence[str],
    env: Mapping[str, str],
    stdin: bytes,
    cwd: Path,
    sides: tuple[Mapping[str, str], Mapping[str, str]] = ({}, {}),
) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
    """The reference's ``name``, then ours, on the same input; ``sides`` adds to
    the environment of each."""
    ours = [sys.executable, "-m", "server", name]
    # ours has the reference's home as its auto_qmail (qmail.c chdirs there
    # before it runs $QMAILQUEUE), as if built with the same conf-qmail
    ours_env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "QMAILSIM_HOME": str(REFERENCE)}
    runs = []
    for argv, extra in (
        ([str(REFERENCE / "bin" / name)], sides[0]),
        (ours, {**ours_env, **sides[1]}),
    ):
        runs.append(
            subprocess.run(
                [*argv, *args],
                input=stdin,
                capture_output=True,
                env={**env, **extra},
                cwd=cwd,
                timeout=60,
                check=False,
            )
        )
    return runs[0], runs[1]


@pytest.mark.parametrize(
    "args",
    [
        ["cat"],
        ["-nPl", "cat"],
        ["-lP", "-x", "joe-", "-x", "LI", "-DFMms", "echo", "%g", "%h", "%u", "%%", "%z", "x%"],
        ["-z", "cat"],
        ["-x"],
        [],
        ["/no/such"],
        ["sh", "-c", "exit 7"],
        ["sh", "-c", "kill -9 $$"],
    ],
)
def test_qsmhook(tmp_path: Path, args: list[str]) -> None:
    ref, ours = both("qsmhook", args, QENV, b"Subject: x\n\nbody\n", tmp_path)
    assert (ours.returncode, ours.stdout, ours.stderr) == (ref.returncode, ref.stdout, ref.stderr)


FAKE_QUEUE = '#!/bin/sh\ncat > "$OUT.msg"\ncat <&1 > "$OUT.env"\nexit ${FAKEQ_EXIT:-0}\n'


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["joe@ex.org"], {"SENDER": "a b@c"}, RECEIPT_MESSAGE),
        (["j o@ex.org"], {"SENDER": "a@b"}, RECEIPT_MESSAGE),
        (["joe@ex.org"], {"SENDER": ""}, RECEIPT_MESSAGE),
        (["joe@ex.org"], {"SENDER": "#@[]"}, RECEIPT_MESSAGE),
        ([], {"SENDER": "a@b"}, RECEIPT_MESSAGE),
        (["joe@ex.org"], {"SENDER": "a@b", "FAKEQ_EXIT": "31"}, RECEIPT_MESSAGE),
        (["joe@ex.org"], {"SENDER": "a@b", "FAKEQ_EXIT": "71"}, RECEIPT_MESSAGE),
        (["joe@ex.org"], {"SENDER": "a@b"}, b"Notice-Requested-Upon-Delivery-To: x>\n\n"),
        (["joe@ex.org"], {"SENDER": "a@b"}, b"Notice-Requested-Upon-Delivery-To: joe@ex.org\n"),
    ],
)
def test_qreceipt(tmp_path: Path, args: list[str], env: dict[str, str], message: bytes) -> None:
    """Through ``$QMAILQUEUE`` (netqmail's qmail.c honours it), a script that
    keeps the message and the envelope it was handed."""
    fake = tmp_path / "fakeq"
    fake.write_text(FAKE_QUEUE)
    fake.chmod(0o755)
    outs = (tmp_path / "ref", tmp_path / "ours")
    full = {"PATH": "/usr/bin:/bin", "QMAILQUEUE": str(fake), **env}
    runs = both(
        "qreceipt", args, full, message, tmp_path, ({"OUT": str(outs[0])}, {"OUT": str(outs[1])})
    )
    got = [
        (ran.returncode, ran.stdout, ran.stderr, [_kept(out, ".msg"), _kept(out, ".env")])
        for ran, out in zip(runs, outs, strict=True)
    ]
    assert got[1] == got[0]


def _kept(out: Path, suffix: str) -> bytes | None:
    """What the fake queue program wrote to OUT.msg or OUT.env, if it ran."""
    path = out.with_suffix(suffix)
    return path.read_bytes() if path.exists() else None


def _first_screen(argv: list[str], env: Mapping[str, str], size: int) -> bytes:
    """The first ``size`` bytes maildirwatch writes; then it is stopped (it
    loops forever, sleeping 30 s between screens)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=dict(env))
    assert proc.stdout is not None
    try:
        data = b""
        while len(data) < size and (chunk := proc.stdout.read(size - len(data))):
            data += chunk
        return data
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_maildirwatch(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    messages = [FIRST, b"no header here\nmore\n", b"Delivered-To:\nReturn-Path: \n\n"]
    for n, data in enumerate(messages):
        path = maildir / "new" / f"{n}.x"
        path.write_bytes(data)
        os.utime(path, (1_600_000_000 + n, 1_600_000_000 + n))
    (maildir / "cur" / "9.z").write_bytes(FIRST)  # maildirwatch looks at new/ only
    first = CLEAR + b"".join(map(summary, messages))
    env = {"MAILDIR": str(maildir), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    ref = _first_screen([str(REFERENCE / "bin" / "maildirwatch")], env, len(first))
    ours = _first_screen([sys.executable, "-m", "server", "maildirwatch"], env, len(first))
    assert ours == ref == first


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare -m"
)
def test_qbiff(tmp_path: Path) -> None:
    worlds = {}
    for which in ("ref", "ours"):
        (tmp_path / which).mkdir()
        worlds[which] = make_world(tmp_path / which)
    env = {"USER": "joe", "SENDER": "a@b.org", "LOCAL": "joe-x", "PATH": "/usr/bin:/bin"}
    utmp_path, dev = worlds["ref"]
    run = tmp_path / "ref" / "run"
    run.mkdir()
    utmp_path.rename(run / "utmp")
    script = f"mount --bind {run} /run && mount --bind {dev} /dev && exec {REFERENCE}/bin/qbiff"
    subprocess.run(
        ["unshare", "-m", "sh", "-c", script], input=BIFF_MESSAGE, env=env, check=True, timeout=60
    )
    utmp_path, dev = worlds["ours"]
    ours_env = {**env, "QMAILSIM_UTMP": str(utmp_path), "QMAILSIM_DEV": str(dev)}
    subprocess.run(
        [sys.executable, "-m", "server", "qbiff"],
        input=BIFF_MESSAGE,
        env={**ours_env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        check=True,
        timeout=60,
    )
    for tty in ("tty1", "pts/3", "ttyn", "ttymissing"):
        ref_tty, our_tty = worlds["ref"][1] / tty, worlds["ours"][1] / tty
        assert our_tty.read_bytes() == ref_tty.read_bytes(), tty
        assert our_tty.stat().st_mode == ref_tty.stat().st_mode, tty
    assert (worlds["ours"][1] / "tty1").read_bytes().startswith(b"\r\n\a*** TO <joe-x>")
