"""Targets: what a scenario runs against. ``sim`` (the default) is targets/sim.py."""

from __future__ import annotations

from harness.targets.base import Target


def make_target(name: str) -> Target:
    if name == "sim":
        from harness.targets.sim import SimTarget

        return SimTarget()
    raise ValueError(f"unknown target {name!r} (this build knows: sim)")


__all__ = ["Target", "make_target"]
