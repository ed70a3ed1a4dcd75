"""benchmarks/receive.py keeps working (a tiny run; the figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "receive.py"


@pytest.mark.live
def test_receive_benchmark_runs() -> None:
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--messages",
        "4",
        "--concurrency",
        "1",
        "2",
        "--repeat",
        "1",
    ]
    done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines[0].startswith("4 messages of ~2048 bytes")
    assert [line.split()[0] for line in lines[2:-2]] == ["1", "2"]
    assert lines[-2].startswith("queue writer alone, 1 at a time: ")
    assert lines[-1].startswith("queue writer alone, 2 at a time: ")
