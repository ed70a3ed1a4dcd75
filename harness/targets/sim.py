"""The simulator target: our server's cores in-process, on a virtual clock.

:meth:`SimTarget.start` makes a real qmail home in the scenario's work
directory (server.home.setup, then the scenario's control files, users and
their ``.qmail`` files and Maildirs, users/assign + users/cdb, alias files,
the patches file, a resolv.conf naming the fake DNS servers, the checkpassword
table; the users' part is :mod:`harness.targets.simhome`). Programs run
through :func:`server.programs.run` with all the client's bytes on stdin:
qmail-smtpd and qmail-pop3d answer strictly in order, so one pass gives the
same replies a live session would.

Deliveries happen only in ``run``/``advance``/``signal`` steps: qmail-send's
core (server.send.core.QmailSend) is driven by hand with the local channel
(server.local.lspawn) and the remote channel (server.remote.rspawn) wired to
the fake DNS and fake peers. The same seed gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from harness import simqueue
from harness.converse import PacedInput, Turn, client_bytes
from harness.fakedns import FakeDns
from harness.fakepeers import FakePeers
from harness.mailboxes import dated_on_purpose
from harness.scenario.model import (
    InjectStep,
    ProgramStep,
    Scenario,
    SessionStep,
    SignalName,
)
from harness.targets.base import (
    LimitExceeded,
    Observation,
    ProgramResult,
    StepError,
    Target,
    apply_env,
    expand_workdir,
    program_argv,
)
from harness.targets.simhome import (
    SimFileOps,
    control_text,
    hand_over_homes,
    make_user,
    set_modes,
    write_assign,
    write_passwords,
)
from harness.targets.zone import install_localtime, zone_env
from server import programs
from server.home import setup as setup_home
from server.privsep import privileged
from server.programs import ProgramContext
from server.runtime import Runtime, VirtualClock, virtual_runtime
from server.spawn import Channel, ChannelName, DeliveryJob

#: What tcpserver would set for a connection from 127.0.0.1 (tcp-environ(5)).
SMTP_ENV = {
    "PROTO": "TCP",
    "TCPLOCALIP": "127.0.0.1",
    "TCPLOCALPORT": "25",
    "TCPREMOTEIP": "127.0.0.1",
    "TCPREMOTEPORT": "40000",
}
POP3_ENV = {**SMTP_ENV, "TCPLOCALPORT": "110"}
#: qmtp and qmqp steps: tcpserver's variables on QMTP's port 209 and QMQP's 628.
NETSTRING_ENV = {
    "qmtp": ("qmail-qmtpd", {**SMTP_ENV, "TCPLOCALPORT": "209"}),
    "qmqp": ("qmail-qmqpd", {**SMTP_ENV, "TCPLOCALPORT": "628"}),
}
LOCAL_IPS = ("127.0.0.1",)


class SendCore(Protocol):
    def run_due(self) -> None: ...
    def next_wakeup(self) -> float | None: ...
    def alarm(self) -> None: ...
    def hangup(self) -> None: ...
    def terminate(self) -> None: ...


LogFn = Callable[[str], None]
SendFactory = Callable[[ProgramContext, Mapping[ChannelName, Channel], LogFn], SendCore]
LocalFactory = Callable[[ProgramContext], Channel]
RemoteFactory = Callable[[ProgramContext, FakeDns, FakePeers, Path], Channel]


def _real_send(
    ctx: ProgramContext,
    channels: Mapping[ChannelName, Channel],
    log: LogFn,
    env: Mapping[str, str] | None = None,
) -> SendCore:
    from server.send.core import QmailSend

    core: SendCore = QmailSend(ctx, channels, log, env=env)
    return core


def _real_local(ctx: ProgramContext) -> Channel:
    from server.local.lspawn import LocalChannel

    # as root, each delivery runs as its recipient and meets its permissions
    channel: Channel = LocalChannel(ctx, switch_uid=privileged())
    return channel


def _real_remote(ctx: ProgramContext, dns: FakeDns, peers: FakePeers, resolv: Path) -> Channel:
    from server.remote.rspawn import RemoteChannel

    channel: Channel = RemoteChannel(
        ctx, dns=dns, connector=peers, resolvconf=resolv, local_ips=list(LOCAL_IPS)
    )
    return channel


@dataclass(frozen=True)
class _QueueFirst:
    """The local channel, with the simulator's queue service (harness.simqueue)
    started before its first delivery: a ``|command`` run as the user finds
    the socket named in the home, as it would had the service run all along."""

    channel: Channel
    ready: Callable[[], None]

    def deliver(self, job: DeliveryJob) -> bytes:
        self.ready()
        return self.channel.deliver(job)


@dataclass
class Components:
    """The server parts the simulator drives; tests swap in fakes."""

    send: SendFactory = _real_send
    local: LocalFactory = _real_local
    remote: RemoteFactory = _real_remote


class SimTarget(Target):
    name = "sim"
    #: whether this process serves the home's qmail-queue to |commands run as
    #: a user (harness.simqueue); a live target's agent serves its own
    serves_queue = True

    def __init__(self, components: Components | None = None) -> None:
        self.components = components or Components()
        self.interrupt_check: Callable[[], None] = lambda: None
        self._send: SendCore | None = None
        self._stamped: set[tuple[Path, str]] = set()
        self.log: list[str] = []
        #: (seconds since the start, line): what ``qmail-sim show`` draws
        self.timed_log: list[tuple[float, str]] = []
        #: why the scenario's users cannot run this home's bin/ (see hints)
        self._closed: list[str] = []
        self.queue_service: simqueue.SimQueueService | None = None
        self._queue_wanted = False
        self._queue_failed: StepError | None = None

    # -- setting up -------------------------------------------------------------
    def start(self, scenario: Scenario, workdir: Path, seed: int | None = None) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self._closed = []
        self.home = workdir / "qmail"
        seed = scenario.seed if seed is None else seed
        start = self.start_instant(scenario)
        if start is None:
            runtime, clock = virtual_runtime(seed)
        else:
            runtime, clock = virtual_runtime(seed, start=start)
        runtime.fsync = False  # the order of steps is kept; the disk is a temp dir
        self.fileops = SimFileOps()
        runtime.fileops = self.fileops
        self.runtime: Runtime = runtime
        self.clock: VirtualClock = clock
        self.start_time = clock.now()
        me = (scenario.control.get("me") or "sim.example").strip() or "sim.example"
        setup_home(self.home, me=me, patches=scenario.patches)
        install_localtime(self.home, scenario)
        self.set_control(scenario.control)
        self.user_homes = {name: make_user(workdir, u) for name, u in scenario.users.items()}
        write_assign(self.home, workdir, scenario.assign, self.user_homes, runtime.uid)
        if privileged():
            self._closed = hand_over_homes(workdir, self.home, runtime.uid)
        set_modes(scenario.users, self.user_homes)
        for name, text in scenario.aliases.items():
            (self.home / "alias" / f".qmail-{name}").write_text(control_text(text))
        write_passwords(self.home, scenario.users, self.user_homes)
        self.resolvconf = workdir / "resolv.conf"
        named = scenario.dns.resolv_conf
        named = scenario.dns.servers if named is None else named
        self.resolvconf.write_text("".join(f"nameserver {s}\n" for s in named))
        self.dns = FakeDns(scenario.dns, clock.now, self.start_time, wait=clock.advance)
        self.peers = FakePeers(scenario.peers, clock.advance)
        self.stderr = io.BytesIO()
        self.ctx = ProgramContext(
            home=self.home,
            runtime=runtime,
            stderr=self.stderr,
            patches=frozenset(scenario.patches),
            inprocess=True,
        )
        # started at the first local delivery (_QueueFirst): only a |command
        # run as a user queues through it, and most scenarios run none
        self._queue_wanted = self.serves_queue and privileged()
        self._queue_failed = None

    def set_control(self, files: Mapping[str, str | None]) -> None:
        for name, value in files.items():
            path = self.home / "control" / name
            if value is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(control_text(value))

    def _start_queue_service(self) -> None:
        if self._queue_wanted and self.queue_service is None:
            self._queue_wanted = False
            try:
                self.queue_service = simqueue.start(self.ctx)
            except OSError as exc:  # raised inside qmail-send's delivery: kept for _pass
                self._queue_failed = StepError(f"the queue service cannot start: {exc}")

    def close(self) -> None:
        self._queue_wanted = False
        if self.queue_service is not None:
            self.queue_service.close()
            self.queue_service = None

    def hints(self) -> list[str]:
        return [
            "run as root, .qmail programs run as their user, who cannot run this home's"
            f" bin/: {why} (open it for traversal, chmod go+x, or run as a user)"
            for why in self._closed
        ]

    # -- programs -----------------------------------------------------------------
    def _run(
        self, name: str, argv: list[str], env: Mapping[str, str], stdin: bytes
    ) -> ProgramResult:
        """An injection or a home's program: run in the work directory, on every target."""
        return self._execute(name, argv, env, io.BytesIO(stdin), cwd=self.workdir)

    def _execute(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        stdin: BinaryIO,
        cwd: Path | None = None,
    ) -> ProgramResult:
        out = io.BytesIO()
        err_start = len(self.stderr.getvalue())
        ctx = self.ctx if cwd is None else dataclasses.replace(self.ctx, cwd=cwd)
        code = programs.run(name, argv, env, stdin, out, ctx)
        return ProgramResult(
            exit=code, stdout=out.getvalue(), stderr=self.stderr.getvalue()[err_start:]
        )

    def session(self, step: SessionStep, played: Sequence[Turn]) -> ProgramResult:
        if step.kind in NETSTRING_ENV:
            name, netstring_env = NETSTRING_ENV[step.kind]
            env = apply_env({**netstring_env, **zone_env(self.scenario)}, step.env)
            return self._converse(name, [name], env, played)
        base = SMTP_ENV if step.kind == "smtp" else POP3_ENV
        env = apply_env({**base, **zone_env(self.scenario)}, step.env)
        if step.kind == "smtp":
            if self.scenario.tcprules is not None:
                rule_env = self._tcprules(env)
                if rule_env is None:
                    return ProgramResult(exit=0, stdout=b"")  # tcpserver drops it
                env = {**env, **rule_env}
            return self._converse("qmail-smtpd", ["qmail-smtpd"], env, played)
        host = step.host or (self.home / "control" / "me").read_text().strip()
        argv = ["qmail-popup", host, "checkpassword", "qmail-pop3d", "Maildir"]
        return self._converse("qmail-popup", argv, env, played)

    def _converse(
        self, name: str, argv: list[str], env: Mapping[str, str], played: Sequence[Turn]
    ) -> ProgramResult:
        """In process, each read of the input stops at the end of a turn, as a
        read() of the socket would while the client waits for its replies."""
        stdin = PacedInput(client_bytes(played), [len(turn.client) for turn in played])
        return self._execute(name, argv, env, stdin)

    def _tcprules(self, env: Mapping[str, str]) -> dict[str, str] | None:
        from harness.targets.tcprules import lookup

        assert self.scenario.tcprules is not None
        return lookup(self.scenario.tcprules, self.workdir, env)

    def inject(self, step: InjectStep) -> ProgramResult:
        env = apply_env(zone_env(self.scenario), expand_workdir(step.env, self.workdir))
        return self._run(
            "qmail-inject", ["qmail-inject", *step.args], env, step.message.encode("utf-8")
        )

    def program(self, step: ProgramStep) -> ProgramResult:
        argv, env = program_argv(step, self.workdir, zone_env(self.scenario))
        return self._run(argv[0], argv, env, step.stdin.encode("utf-8"))

    # -- qmail-send -----------------------------------------------------------------
    @property
    def send(self) -> SendCore:
        if self._send is None:
            try:
                local = self.components.local(self.ctx)
                if self._queue_wanted:
                    local = _QueueFirst(local, self._start_queue_service)
                remote = self.components.remote(self.ctx, self.dns, self.peers, self.resolvconf)
                channels: dict[ChannelName, Channel] = {"local": local, "remote": remote}
                if self.components.send is _real_send:  # qmail-start's environment
                    env = zone_env(self.scenario)
                    self._send = _real_send(self.ctx, channels, self._log_line, env)
                else:
                    self._send = self.components.send(self.ctx, channels, self._log_line)
            except (ImportError, programs.NotBuilt) as exc:
                raise StepError(f"the queue cannot run: {exc}") from exc
        return self._send

    def _triggered(self) -> bool:
        pulled, self.fileops.pulled = self.fileops.pulled, False
        return pulled

    def _log_line(self, line: str) -> None:
        self.log.append(line)
        self.timed_log.append((self.clock.now() - self.start_time, line))

    def _pass(self) -> None:
        self.interrupt_check()
        self.send.run_due()
        if self._queue_failed is not None:
            raise self._queue_failed
        self._stamp_deliveries()

    def _stamp_deliveries(self) -> None:
        """Give mail delivered in this pass the virtual time as its mtime.

        The file system's clock is the real one; qmail-pop3d (maildir.c) lists
        only messages whose mtime is before ``now``, so a Maildir file stamped
        with real time would stay invisible to a virtual ``now``. Every new
        file was written during this pass, at the current virtual time. New
        files are told by name, not by an mtime ahead of ``now``: a clock
        started after the real time (``clock_start``) is ahead of every mtime.
        A message keeps its name's unique part when qmail-pop3d moves it to cur/.
        A file whose date was set on purpose (``touch -d``) keeps it.
        """
        now = self.clock.now()
        for home in self.user_homes.values():
            for sub in ("new", "cur"):
                folder = home / "Maildir" / sub
                try:
                    entries = list(os.scandir(folder))
                except OSError:  # none, or one the harness may not enter either (non-root)
                    continue
                for entry in entries:
                    unique = (folder.parent, entry.name.split(":")[0])
                    if unique not in self._stamped:
                        self._stamped.add(unique)
                        if not dated_on_purpose(entry.path):
                            os.utime(entry.path, (now, now))

    def run_until_idle(self) -> None:
        send = self.send
        for _ in range(self.scenario.limits.passes):
            self._pass()
            wake = send.next_wakeup()
            if not self._triggered() and (wake is None or wake > self.clock.now()):
                return
        raise LimitExceeded(f"still busy after {self.scenario.limits.passes} queue passes")

    def advance(self, seconds: float) -> None:
        target = self.clock.now() + seconds
        if target - self.start_time > self.scenario.limits.virtual:
            raise LimitExceeded(
                f"advancing to +{target - self.start_time:g}s passes limits.virtual "
                f"({self.scenario.limits.virtual:g}s)"
            )
        send = self.send
        for _ in range(self.scenario.limits.passes):
            wake = send.next_wakeup()
            if self._triggered():
                wake = self.clock.now()
            if wake is None or wake > target:
                break
            self.clock.set(max(wake, self.clock.now()))
            self._pass()
        else:
            raise LimitExceeded(f"more than {self.scenario.limits.passes} queue passes")
        self.clock.set(target)
        self.run_until_idle()

    def signal(self, name: SignalName) -> None:
        send = self.send
        {"alrm": send.alarm, "hup": send.hangup, "term": send.terminate}[name]()

    # -- looking -------------------------------------------------------------------------
    def observe(self) -> Observation:
        next_retry: float | None = None
        try:
            wake = self.send.next_wakeup()
            next_retry = None if wake is None else wake - self.start_time
        except StepError:
            pass
        return Observation(
            home=self.home,
            workdir=self.workdir,
            user_homes=self.user_homes,
            log=self.log,
            dns_queries=self.dns.queries,
            peer_sessions=self.peers.sessions,
            now=self.clock.now() - self.start_time,
            next_retry=next_retry,
            extra={
                "stderr": self.stderr.getvalue(),
                "mboxes": {
                    name: self.user_homes[name] / u.mbox
                    for name, u in self.scenario.users.items()
                    if u.mbox
                },
            },
        )


__all__ = ["Components", "SendCore", "SimTarget"]
