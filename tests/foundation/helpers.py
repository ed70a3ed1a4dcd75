"""In-process program runner shared by the foundation tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from server.programs import ProgramContext, run
from server.runtime import virtual_runtime


@dataclass
class Result:
    code: int
    out: bytes
    err: bytes


def run_program(home: Path, name: str, *args: str, stdin: bytes = b"", uid: int = 1000) -> Result:
    runtime, _ = virtual_runtime(uid=uid)
    out, err = io.BytesIO(), io.BytesIO()
    ctx = ProgramContext(home=home, runtime=runtime, stderr=err)
    code = run(name, [name, *args], {}, io.BytesIO(stdin), out, ctx)
    return Result(code, out.getvalue(), err.getvalue())
