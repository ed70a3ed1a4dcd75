"""Regression test from a differential run against netqmail-1.06's tcp-env.

Started without a locale, Python puts ``LC_CTYPE=C.UTF-8`` into its own
environment (PEP 538); our programs passed it on to their children, where
qmail's pass on exactly what they were given.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.home import setup


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_children_get_the_environment_we_were_given(tmp_path: Path) -> None:
    home = tmp_path / "qmail"
    setup(home)
    env = {"PATH": "/usr/bin:/bin", "PROTO": "TCP"}
    proc = subprocess.run(
        [sys.executable, "-m", "server", "--home", str(home), "tcp-env", "env"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    # netqmail's tcp-env, same input: exactly these two lines, exit 0.
    assert (proc.returncode, proc.stdout) == (0, b"PATH=/usr/bin:/bin\nPROTO=TCP\n")


def test_a_locale_we_were_given_is_kept(tmp_path: Path) -> None:
    home = tmp_path / "qmail"
    setup(home)
    env = {"PATH": "/usr/bin:/bin", "LC_CTYPE": "C.UTF-8", "PROTO": "TCP"}
    proc = subprocess.run(
        [sys.executable, "-m", "server", "--home", str(home), "tcp-env", "env"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.stdout == b"PATH=/usr/bin:/bin\nLC_CTYPE=C.UTF-8\nPROTO=TCP\n"
