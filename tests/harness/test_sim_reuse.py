"""What the simulator saves between and within scenarios, and what it must not change.

Run as root, the simulator's queue service (harness.simqueue) starts at a
scenario's first local delivery, not at its start: a scenario that delivers
nothing locally never pays for it, and a ``|command`` that queues still finds
the socket named in the home.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import simqueue
from harness.runner import run_scenario
from harness.scenario import load_text
from harness.targets.sim import SimTarget
from server.privsep import QmailIds
from server.programs import read_queue_socket

needs_split = pytest.mark.skipif(
    os.geteuid() != 0 or QmailIds.from_system() is None,
    reason="the queue service is the simulator's as root, with qmail's users",
)

CONTROL = """
  control: {me: mx.example.org, locals: [example.org], rcpthosts: [example.org]}
"""


class Watching(SimTarget):
    """The simulator, noting whether its queue service was running at each step."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []
        self.socket_named: list[bool] = []

    def run_until_idle(self) -> None:
        super().run_until_idle()
        self.seen.append(self.queue_service is not None)
        self.socket_named.append(read_queue_socket(self.home) is not None)


def _one(text: str) -> Watching:
    (scenario,) = load_text(text)
    target = Watching()
    result = run_scenario(scenario, target=target)
    assert result.ok, result.message
    return target


@needs_split
def test_no_service_without_a_local_delivery() -> None:
    target = _one(
        f"""
- name: smtp only
{CONTROL}
  steps:
    - smtp:
        transcript: |
          S: 220 mx.example.org ESMTP
          C: QUIT
          S: 221 mx.example.org
    - run: idle
"""
    )
    assert target.seen == [False] and target.socket_named == [False]


@needs_split
def test_a_forwarding_command_queues_through_the_service_started_for_it(
    tmp_path: Path,
) -> None:
    target = _one(
        f"""
- name: a |command that queues a forward
{CONTROL}
  users:
    carol: {{}}
    bob: {{dotqmail: {{"": "|forward carol@example.org"}}}}
  steps:
    - inject:
        args: [bob@example.org]
        message: |
          Subject: on

          body
    - run: idle
    - expect:
        log: ["~ ^delivery 2: success: did_1\\\\+0\\\\+0/$"]
        maildir: {{carol: 1}}
"""
    )
    assert target.seen == [True] and target.socket_named == [True]
    # closed with the scenario: the socket is gone and no longer named
    assert target.queue_service is None


@needs_split
def test_a_queue_service_that_cannot_start_is_the_steps_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(_ctx: object) -> None:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(simqueue, "start", refuse)
    (scenario,) = load_text(
        f"""
- name: a local delivery
{CONTROL}
  users:
    bob: {{}}
  steps:
    - inject:
        args: [bob@example.org]
        message: |
          Subject: on

          body
    - run: idle
"""
    )
    result = run_scenario(scenario, target=Watching())
    assert result.status == "error" and result.step.startswith("step 2 (run")
    assert "the queue service cannot start: [Errno 98] Address already in use" in result.message
