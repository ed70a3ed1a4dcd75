"""serve's event loop (harness.commands.serve.run_loop): uvloop's when installed."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from harness.commands.serve import run_loop


async def _loop_module() -> int:
    await asyncio.sleep(0)
    return 7 if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else 3


def test_run_loop_returns_the_coroutine_result() -> None:
    assert run_loop(_loop_module()) in (3, 7)


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed")
def test_run_loop_uses_uvloop_when_installed() -> None:
    assert run_loop(_loop_module()) == 7
