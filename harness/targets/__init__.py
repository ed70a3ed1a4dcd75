"""Targets: what a scenario runs against. ``sim`` (the default) is targets/sim.py."""

from __future__ import annotations

from harness.targets.base import Target


def make_target(name: str) -> Target:
    if name == "sim":
        from harness.targets.sim import SimTarget

        return SimTarget()
    if name == "live":  # our programs as processes (targets/live.py)
        from harness.targets.live import LiveTarget

        return LiveTarget()
    if name.startswith("qmail:"):  # a real qmail home (targets/qmail.py)
        from harness.targets.qmail import QmailTarget

        return QmailTarget(name.removeprefix("qmail:"))
    raise ValueError(f"unknown target {name!r} (this build knows: sim, live, qmail:DIR)")


__all__ = ["Target", "make_target"]
