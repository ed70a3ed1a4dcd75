"""``--target live``: the scenario run by our programs as real processes on real sockets.

The home is laid out exactly as the simulator lays it out (SimTarget.start
is reused for that), then an agent process (:mod:`harness.targets.liveagent`)
is started, in private network and mount namespaces when
:mod:`harness.netns` can make them. The agent serves the fake DNS and the
fake peers on their own addresses (port 53 and port 25), writes the home's
resolv.conf, and runs our server: qmail-smtpd and qmail-popup behind our
tcpserver, qmail-send's daemon with its real channels. Each step is one
request over a pipe; control files are written here directly (the home is
shared).

Time is real: ``advance`` asks the agent to move an offset clock
(server.runtime.OffsetClock) from one due retry to the next, never sleeping,
and ``run`` waits (polling, bounded) until qmail-send is idle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

from harness import netns
from harness.converse import Turn
from harness.fakedns import DnsQuery
from harness.fakepeers import PeerSession
from harness.scenario.model import InjectStep, ProgramStep, Scenario, SessionStep, SignalName
from harness.targets.agentwire import Request, Setup, read_frame, write_frame
from harness.targets.base import (
    LimitExceeded,
    Observation,
    ProgramResult,
    StepError,
    apply_env,
    expand_workdir,
    program_argv,
)
from harness.targets.sim import SimTarget
from harness.targets.zone import zone_env
from server.runtime import RealClock

#: Wall seconds the agent gets to stop before it is killed.
STOP_LIMIT = 15.0


def client_ips(scenario: Scenario) -> tuple[str, ...]:
    """The TCPREMOTEIP values the scenario's sessions come from."""
    ips = []
    for step in scenario.steps:
        env = getattr(step, "env", None)
        if getattr(step, "kind", "") in ("smtp", "pop3", "qmtp", "qmqp") and env:
            value = env.get("TCPREMOTEIP")
            if value:
                ips.append(value)
    return tuple(dict.fromkeys(ips))


class Agent:
    """The agent process and the request/reply pipe to it."""

    def __init__(self, setup: Setup, use_netns: bool) -> None:
        command = [sys.executable, "-m", "harness.targets.liveagent"]
        if use_netns:
            command = netns.prefix() + command
        self.stderr_path = setup.workdir / "agent.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,  # its children (qmail-start...) go with it
            )
        self.stdin = cast(IO[bytes], self.proc.stdin)
        self.stdout = cast(IO[bytes], self.proc.stdout)
        self.busy = False
        write_frame(self.stdin, setup)

    def call(self, verb: str, **args: Any) -> Any:
        # Set until the reply is read: a call cut short (the runner's wall-clock
        # alarm) leaves the pipe out of step, and close() must not use it.
        self.busy = True
        try:
            write_frame(self.stdin, Request(verb=verb, args=args))
            status, value = cast(tuple[str, Any], read_frame(self.stdout))
            self.busy = False
        except (EOFError, BrokenPipeError) as exc:
            raise StepError(f"the live agent died ({exc}); {self.tail()}") from exc
        if status != "ok":
            raise StepError(f"live target: {value}")
        return value

    def tail(self) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return "its stderr ends: " + text[-800:] if text else "it wrote nothing to stderr"

    def kill(self) -> None:
        """The agent and every process it started (its own session, by its id)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.busy and self.proc.poll() is None:
            self.kill()
        if self.proc.poll() is None:
            with contextlib.suppress(StepError):
                self.call("close")
            with contextlib.suppress(OSError):
                self.stdin.close()
            try:
                self.proc.wait(STOP_LIMIT)
            except subprocess.TimeoutExpired:
                self.kill()
        for pipe in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


class LiveTarget(SimTarget):
    name = "live"
    mode = "live"
    serves_queue = False  # harness.targets.liveserver's OurServer does

    def __init__(self) -> None:
        super().__init__()
        self.agent: Agent | None = None
        self.seen: dict[str, Any] = {}

    def start(self, scenario: Scenario, workdir: Path, seed: int | None = None) -> None:
        super().start(scenario, workdir, seed)  # the same home as the simulator's
        self.offset_path = workdir / "clock-offset"
        # OffsetClock adds this to the real time: the programs' clock starts there
        start = self.start_instant(scenario)
        offset = 0.0 if start is None else start - RealClock().now()
        self.offset_path.write_text(f"{offset:.6f}\n")
        self.agent = Agent(self.setup_for(scenario, workdir), self.use_netns())
        self.agent.call("start")

    def use_netns(self) -> bool:
        return netns.available()

    def setup_for(self, scenario: Scenario, workdir: Path) -> Setup:
        rules = None
        if scenario.tcprules is not None:
            from harness.targets.tcprules import lookup

            lookup(scenario.tcprules, workdir, {})  # compiles WORKDIR/tcp.smtp.cdb
            rules = workdir / "tcp.smtp.cdb"
        return Setup(
            mode=self.mode,
            home=self.home,
            workdir=workdir,
            scenario=scenario,
            offset_path=self.offset_path,
            netns=self.use_netns(),
            rules_cdb=rules,
            client_ips=client_ips(scenario),
        )

    @property
    def live(self) -> Agent:
        if self.agent is None:
            raise StepError("the live target has not started")
        return self.agent

    def session(self, step: SessionStep, played: Sequence[Turn]) -> ProgramResult:
        env = {**zone_env(self.scenario), **step.env}
        code, out, err = self.live.call(
            "session", kind=step.kind, env=env, played=played, host=step.host
        )
        return ProgramResult(exit=code, stdout=out, stderr=err)

    def inject(self, step: InjectStep) -> ProgramResult:
        env = apply_env(zone_env(self.scenario), expand_workdir(step.env, self.workdir))
        code, out, err = self.live.call(
            "inject",
            argv=["qmail-inject", *step.args],
            env=env,
            message=step.message.encode("utf-8"),
        )
        return ProgramResult(exit=code, stdout=out, stderr=err)

    def program(self, step: ProgramStep) -> ProgramResult:
        argv, env = program_argv(step, self.workdir, zone_env(self.scenario))
        stdin = step.stdin.encode("utf-8")
        code, out, err = self.live.call("program", argv=argv, env=env, stdin=stdin)
        return ProgramResult(exit=code, stdout=out, stderr=err)

    def run_until_idle(self) -> None:
        self.interrupt_check()
        self.live.call("idle")

    def advance(self, seconds: float) -> None:
        elapsed = float(self.live.call("observe")["now"])
        if elapsed + seconds > self.scenario.limits.virtual:
            raise LimitExceeded(
                f"advancing to +{elapsed + seconds:g}s passes limits.virtual "
                f"({self.scenario.limits.virtual:g}s)"
            )
        self.live.call("advance", seconds=seconds, passes=self.scenario.limits.passes)

    def signal(self, name: SignalName) -> None:
        self.live.call("signal", name=name)

    def observe(self) -> Observation:
        seen = self.live.call("observe")
        queries: list[DnsQuery] = seen["dns_queries"]
        sessions: Mapping[str, list[PeerSession]] = seen["peer_sessions"]
        return Observation(
            home=self.home,
            workdir=self.workdir,
            user_homes=self.user_homes,
            log=seen["log"],
            dns_queries=queries,
            peer_sessions=sessions,
            now=seen["now"],
            next_retry=seen.get("next_retry"),
            extra={
                "stderr": seen.get("stderr", b""),
                "mboxes": {
                    name: self.user_homes[name] / u.mbox
                    for name, u in self.scenario.users.items()
                    if u.mbox
                },
            },
        )

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()
            self.agent = None
        super().close()


__all__ = ["Agent", "LiveTarget", "client_ips"]
