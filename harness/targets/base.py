"""The Target interface: the verbs a scenario's steps need from a mail system.

A target prepares a qmail home for a scenario (:meth:`Target.start`), plays
sessions and injections, moves its clock, sends qmail-send signals, and lets
``expect`` look at the result (:meth:`Target.observe`). Everything ``expect``
checks on disk (queue/, Maildirs, mboxes) is read from the home, which is the
contract every target shares (DESIGN.md, "The contract: a qmail home").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.converse import Turn
from harness.fakedns import DnsQuery
from harness.fakepeers import PeerSession
from harness.scenario.model import InjectStep, ProgramStep, Scenario, SessionStep, SignalName


class StepError(Exception):
    """A step could not be carried out (as opposed to an expectation not met)."""


class LimitExceeded(StepError):
    """A per-scenario limit (virtual time, wall clock, queue passes) was hit."""


@dataclass(frozen=True, kw_only=True)
class ProgramResult:
    """What a program run (a session, an injection) gave back."""

    exit: int
    stdout: bytes
    stderr: bytes = b""


@dataclass(kw_only=True)
class Observation:
    """A read-only view of a target's world, for ``expect``."""

    home: Path
    workdir: Path
    user_homes: Mapping[str, Path]
    log: Sequence[str]
    dns_queries: Sequence[DnsQuery]
    peer_sessions: Mapping[str, Sequence[PeerSession]]
    now: float  # seconds since the scenario's start
    next_retry: float | None  # seconds since the start; None when nothing waits
    extra: dict[str, object] = field(default_factory=dict)
    #: for a target that must do something to learn the next retry (a real
    #: qmail-send tells it only as it exits): asked instead of ``next_retry``,
    #: and only by an expectation on it
    retry_probe: Callable[[], float | None] | None = None

    def retry(self) -> float | None:
        """When qmail-send next retries (seconds since the start), or None."""
        return self.retry_probe() if self.retry_probe is not None else self.next_retry


def apply_env(base: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """A step's ``env`` applied to ``base``: a value sets a variable, None removes it."""
    env = dict(base)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


#: What ``{workdir}`` in a step's env values and a program's arguments stands for.
WORKDIR_WORD = "{workdir}"


def expand_workdir(changes: Mapping[str, str | None], workdir: Path) -> dict[str, str | None]:
    """A step's ``env`` with ``{workdir}`` in each value made the run's work directory."""
    return {
        k: None if v is None else v.replace(WORKDIR_WORD, str(workdir)) for k, v in changes.items()
    }


def program_argv(
    step: ProgramStep, workdir: Path, base: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """``run_program``'s argv and environment (the step's changes to ``base``),
    ``{workdir}`` expanded in both."""
    argv = [arg.replace(WORKDIR_WORD, str(workdir)) for arg in step.args]
    return argv, apply_env(base, expand_workdir(step.env, workdir))


class Target(ABC):
    name = "abstract"
    #: The instant (seconds since the epoch) the scenario's clock starts at;
    #: None keeps the target's default. A target whose programs read the real
    #: clock (qmail:DIR) ignores it.
    clock_start: float | None = None

    def start_instant(self, scenario: Scenario) -> float | None:
        """Where this scenario's clock starts: its own ``clock_start`` (its
        expectations hold at that instant only), else the run's, else None."""
        return scenario.clock_start if scenario.clock_start is not None else self.clock_start

    @abstractmethod
    def start(self, scenario: Scenario, workdir: Path, seed: int | None = None) -> None: ...

    @abstractmethod
    def session(self, step: SessionStep, played: Sequence[Turn]) -> ProgramResult:
        """Play a session's turns (harness.converse) to qmail-smtpd or qmail-popup."""

    @abstractmethod
    def inject(self, step: InjectStep) -> ProgramResult: ...

    @abstractmethod
    def run_until_idle(self) -> None: ...

    @abstractmethod
    def advance(self, seconds: float) -> None: ...

    @abstractmethod
    def signal(self, name: SignalName) -> None: ...

    @abstractmethod
    def set_control(self, files: Mapping[str, str | None]) -> None: ...

    @abstractmethod
    def observe(self) -> Observation: ...

    def program(self, step: ProgramStep) -> ProgramResult:
        """Run the home's program ``step.args[0]`` (qmail-newmrh, qmail-tcpok, …)
        in the scenario's work directory, as every target does."""
        raise StepError(f"the {self.name} target cannot run a home's programs")

    def hints(self) -> list[str]:
        """What about this machine may explain a failure (said after it); none by default."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`start` took (not the work directory: the runner owns it)."""
