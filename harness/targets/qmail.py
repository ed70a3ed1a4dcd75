"""``--target qmail:DIR``: a scenario played against a real qmail home at DIR.

DIR is a home built by the user from netqmail-1.06 (``make setup check``),
given over to the harness while it runs: for each scenario its control/
files, users/assign (then ``DIR/bin/qmail-newu``) and alias/.qmail-* files
are replaced by the scenario's, and whatever the scenario left in queue/ is
removed when it ends (qmail-send is stopped by then); one scenario at a
time has DIR, the others wait (an flock on DIR). The users' homes and
Maildirs are made in the scenario's work directory, as for the simulator
(a scratch simulator home beside them provides our checkpassword and its
password table for qmail-popup), and given to the uid and gid in
users/assign when we are root, because qmail-lspawn refuses to deliver as
root (qmail-lspawn.c, QLX_ROOT).

Programs run in the agent (:mod:`harness.targets.qmailserver`) inside
private network and mount namespaces, so qmail's resolver, which reads only
/etc/resolv.conf, asks the fake DNS; without namespaces this target cannot
run and says why. Sessions and injections go through the same code as the
simulator's (tcpserver's environment, tcprules); only the program is DIR's,
and a session is played to it turn by turn over a socket, as a client
would (harness.converse). A real qmail reads the real clock, so an
``advance`` step ages the queue instead (harness.targets.qmailclock, run by
the agent); what cannot be done that way (a peer's scripted delay, a jump
after a control file changed under a running qmail-send, TERM before any
run) raises :class:`~harness.compare.NotComparable`, which ``run`` reports
as an error and ``compare`` as "not comparable", never as a pass. The alias
user's home is DIR/alias inside the agent's mount namespace
(qmailserver.bind_alias_home), and what a scenario leaves in DIR besides the
queue (alias/Maildir, queue/lock/tcpto) is cleared before the next.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness import netns
from harness.compare import NotComparable
from harness.converse import Turn
from harness.scenario.model import AdvanceStep, RunStep, Scenario, SignalName, SignalStep
from harness.targets.agentwire import Setup
from harness.targets.base import Observation, ProgramResult, StepError
from harness.targets.live import Agent, LiveTarget, client_ips
from harness.targets.livepeers import scripted_delays
from harness.targets.qmailclock import libfaketime, queue_files
from harness.targets.qmailserver import alias_home
from harness.targets.sim import SimTarget
from harness.targets.zone import zone_env

#: Our checkpassword for qmail-popup: the scratch home's table (checkpassword.py).
CHECKPASSWORD = """#!/bin/sh
exec {python} -m server --home {home} checkpassword "$@"
"""


#: queue/lock/tcpto as ``make setup`` makes it (hier.c, z(...,1024,...)).
TCPTO_SIZE = 1024


class QmailTarget(LiveTarget):
    name = "qmail"
    mode = "qmail"
    session = SimTarget.session
    inject = SimTarget.inject
    program = SimTarget.program

    def __init__(self, directory: str) -> None:
        super().__init__()
        self.reference = Path(directory).resolve()
        #: the patches the reference was built with (compare --reference-patches)
        self.built_patches: frozenset[str] = frozenset()
        self.ran = False  # qmail-send has been started (a run or advance step)
        self.control_changed = False  # a control file changed since then
        self._hold: int | None = None  # DIR, flocked while a scenario has it

    def start(self, scenario: Scenario, workdir: Path, seed: int | None = None) -> None:
        reason = self.unusable()
        if reason is not None:
            raise StepError(reason)
        self._hold = _hold_home(self.reference)
        _peers_comparable(scenario, self.reference)
        SimTarget.start(self, scenario, workdir, seed)  # users, Maildirs, scratch home
        self.scratch = self.home
        self.home = self.reference
        self._lay_out()
        self.offset_path = workdir / "clock-offset"
        self.offset_path.write_text("0\n")
        self.agent = Agent(self.setup_for(scenario, workdir), use_netns=True)
        self.agent.call("start")
        if _terminates_first(scenario):
            # the simulator's qmail-send runs from the start: one started only at
            # the TERM would deliver what is queued first (todo_do before the signal)
            self.agent.call("start_send")
            self.ran = True

    def unusable(self) -> str | None:
        return unusable(self.reference)

    def setup_for(self, scenario: Scenario, workdir: Path) -> Setup:
        cpw = workdir / "checkpassword"
        cpw.write_text(CHECKPASSWORD.format(python=sys.executable, home=self.scratch))
        cpw.chmod(0o755)
        return Setup(
            mode="qmail",
            home=self.reference,
            workdir=workdir,
            scenario=scenario,
            offset_path=self.offset_path,
            netns=True,
            client_ips=client_ips(scenario),
            env=zone_env(scenario),  # TZ for qmail-start and every program
        )

    # -- the reference home ----------------------------------------------------------
    def _lay_out(self) -> None:
        ref, scratch = self.reference, self.scratch
        leftovers = queue_files(ref)
        for path in leftovers:
            path.unlink()
        _clear_alias_and_lock(ref, scratch)
        _replace(ref / "control", sorted((scratch / "control").iterdir()), "*")
        _replace(ref / "alias", sorted((scratch / "alias").glob(".qmail-*")), ".qmail-*")
        users = ref / "users"
        for name in ("assign", "cdb"):
            (users / name).unlink(missing_ok=True)
        assign = scratch / "users" / "assign"
        if assign.exists():
            shutil.copyfile(assign, users / "assign")
            done = subprocess.run(
                [str(ref / "bin" / "qmail-newu")], capture_output=True, check=False
            )
            if done.returncode != 0:
                raise StepError(f"qmail-newu failed: {done.stderr.decode(errors='replace')}")
        self._patches()
        if os.geteuid() == 0:
            self._give_homes(self.runtime.uid)

    def _patches(self) -> None:
        """A home of ours (``qmail-sim setup``) switches patches in a file; a real
        netqmail has them compiled in (``built_patches``, from compare's
        ``--reference-patches``), so only a scenario with exactly those compares."""
        ours = self.reference / ".qmail-sim"
        if ours.is_dir():
            text = "".join(f"{p}\n" for p in self.scenario.patches)
            (ours / "patches").write_text(text)
        elif set(self.scenario.patches) != self.built_patches:
            wanted = ", ".join(self.scenario.patches) or "none"
            built = ", ".join(sorted(self.built_patches)) or "none"
            raise NotComparable(
                f"patches {wanted} cannot be switched on a built qmail (built with: {built})"
            )

    def _give_homes(self, uid: int) -> None:
        """The users' homes to ``uid``, and a way in to them through the work directory."""
        for folder in {self.workdir, *(h.parent for h in self.user_homes.values())}:
            folder.chmod(0o711)
        for home in self.user_homes.values():
            for path in (home, *home.rglob("*")):
                os.chown(path, uid, uid, follow_symlinks=False)

    def set_control(self, files: Mapping[str, str | None]) -> None:
        SimTarget.set_control(self, files)  # into self.home: the reference once started
        self.control_changed = self.control_changed or self.ran

    def run_until_idle(self) -> None:
        if self.control_changed and scripted_delays(self.scenario.peers):
            raise NotComparable(
                "control files changed while qmail-send ran: the jump that pays a peer's "
                "delay restarts it, and it would reread them"
            )
        self.ran = True
        self.live.call("idle")

    # -- programs and steps --------------------------------------------------------------
    def _words(self, name: str, argv: list[str]) -> list[str]:
        bin_ = self.reference / "bin"
        words = [str(bin_ / argv[0]), *argv[1:]]
        if name == "qmail-popup":  # qmail-popup HOST checkpassword qmail-pop3d Maildir
            words[2] = str(self.workdir / "checkpassword")
            words[3] = str(bin_ / "qmail-pop3d")
        return words

    def _run(
        self, name: str, argv: list[str], env: Mapping[str, str], stdin: bytes
    ) -> ProgramResult:
        words = self._words(name, argv)
        code, out, err = self.live.call(
            "program", argv=words, env=dict(env), stdin=stdin, cwd=str(self.workdir)
        )
        return ProgramResult(exit=code, stdout=out, stderr=err)

    def _converse(
        self, name: str, argv: list[str], env: Mapping[str, str], played: Sequence[Turn]
    ) -> ProgramResult:
        """A session turn by turn, the program on a socket as under tcpserver."""
        words = self._words(name, argv)
        code, out, err = self.live.call("session", argv=words, env=dict(env), played=played)
        return ProgramResult(exit=code, stdout=out, stderr=err)

    def advance(self, seconds: float) -> None:
        """The queue-time fudge (harness.targets.qmailclock): qmail-send is
        restarted to reread its schedule, which rereads its control files too,
        so a control file changed since it started makes the jump not comparable."""
        if self.control_changed:
            raise NotComparable(
                f"control files changed while qmail-send ran: jumping the clock {seconds:g}s "
                "restarts it, and it would reread them"
            )
        self.ran = True
        LiveTarget.advance(self, seconds)

    def signal(self, name: SignalName) -> None:
        self.live.call("signal", name=name)

    def observe(self) -> Observation:
        seen = super().observe()
        seen.retry_probe = lambda: self.live.call("next_retry")
        return seen

    def close(self) -> None:
        super().close()
        if hasattr(self, "scratch"):
            for path in queue_files(self.reference):
                path.unlink(missing_ok=True)
        if self._hold is not None:
            os.close(self._hold)  # the next scenario on DIR may start
            self._hold = None


def _terminates_first(scenario: Scenario) -> bool:
    """Whether a ``signal: term`` comes before any step that runs qmail-send."""
    for step in scenario.steps:
        if isinstance(step, RunStep | AdvanceStep):
            return False
        if isinstance(step, SignalStep) and step.signal == "term":
            return True
    return False


def _peers_comparable(scenario: Scenario, reference: Path) -> None:
    """A peer's scripted delay is waited out against a real qmail-remote on a
    fast clock (libfaketime, harness.targets.qmailclock). A home of ours runs
    qmail-remote inside qmail-rspawn: there is no program to speed up."""
    delays = scripted_delays(scenario.peers)
    if not delays:
        return
    ip, stage, seconds = delays[0]
    why = f"peer {ip} waits {seconds:g}s before its {stage} reply: "
    if (reference / ".qmail-sim").is_dir():
        raise NotComparable(why + "a home of ours has no qmail-remote program to run fast")
    if libfaketime() is None:
        raise NotComparable(
            why + "a real qmail-remote waits it out on a fast clock, which needs "
            "libfaketime (apt-get install libfaketime)"
        )


def _replace(folder: Path, sources: list[Path], pattern: str) -> None:
    """Make ``folder``'s files matching ``pattern`` exactly ``sources``."""
    for old in folder.glob(pattern):
        if old.is_file():
            old.unlink()
    for src in sources:
        if src.is_file():
            shutil.copyfile(src, folder / src.name)


def unusable(reference: Path) -> str | None:
    """Why ``qmail:DIR`` cannot play a scenario on this machine, or None."""
    if not (reference / "bin" / "qmail-send").exists():
        return f"qmail:{reference}: no qmail home there (no bin/qmail-send)"
    why = netns.why_unavailable()
    if why is not None:
        return f"the qmail target needs private namespaces for its resolver: {why}"
    return _alias_home_problem(reference)


def _hold_home(reference: Path) -> int:
    """DIR given to one scenario at a time: its control files, users, alias
    files and queue are the scenario's until :meth:`QmailTarget.close`. Another
    run on DIR (a second ``qmail-sim run``, a pytest-xdist worker) waits here
    for it, where it would otherwise overwrite them mid-scenario or find
    qmail-send "already running". An flock on DIR itself: nothing is written."""
    fd = os.open(reference, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:  # the scenario's wall-clock alarm while waiting
        os.close(fd)
        raise
    return fd


@contextmanager
def holding(reference: Path) -> Iterator[None]:
    """DIR held as a scenario holds it, for a test that reads its control
    files while scenarios on other workers rewrite them."""
    fd = _hold_home(reference)
    try:
        yield
    finally:
        os.close(fd)


__all__ = ["QmailTarget", "holding", "unusable"]


def _alias_home_problem(reference: Path) -> str | None:
    """qmail-getpw finds the alias user's home in the password file; the agent
    mounts DIR/alias over it (qmailserver.bind_alias_home), which needs the
    user and a directory there to mount over. (A home of ours takes DIR/alias
    as the alias user's home whatever passwd says.)"""
    if (reference / ".qmail-sim").is_dir():
        return None
    home = alias_home()
    if home is None:
        return "the qmail target needs qmail's users (INSTALL.ids): there is no alias user"
    if not home.is_dir():
        return (
            f"qmail:{reference}: the alias user's home {home} (passwd) is not a directory: "
            f"the agent mounts {reference / 'alias'} over it, so it must exist"
        )
    return None


def _clear_alias_and_lock(reference: Path, scratch: Path) -> None:
    """What one scenario leaves in DIR for the next, besides the queue: the alias
    user's Maildir (bounces to postmaster) and qmail-remote's tcpto table
    (queue/lock/tcpto, remembered connection timeouts). The alias Maildir is
    made as the scenario's scratch home has it (or not at all), empty; tcpto
    is zeroed in place as ``make setup`` leaves it (hier.c: 1024 zero bytes),
    keeping its owner and mode."""
    maildir = reference / "alias" / "Maildir"
    shutil.rmtree(maildir, ignore_errors=True)
    if (scratch / "alias" / "Maildir").is_dir():
        owner = (reference / "alias").stat()
        for sub in ("", "new", "cur", "tmp"):
            (maildir / sub).mkdir(mode=0o700, exist_ok=True)
            os.chown(maildir / sub, owner.st_uid, owner.st_gid)
    tcpto = reference / "queue" / "lock" / "tcpto"
    if tcpto.exists():
        with open(tcpto, "r+b") as table:
            table.write(bytes(TCPTO_SIZE))
            table.truncate(TCPTO_SIZE)
