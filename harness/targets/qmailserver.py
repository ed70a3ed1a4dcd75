"""A real qmail home's programs as the agent's backend (``--target qmail:DIR``).

Runs inside the agent's private network and mount namespaces, where
/etc/resolv.conf is bind-mounted to a file naming the fake DNS (port 53 on
the scenario's server addresses): qmail's resolver is glibc's, which reads
/etc/resolv.conf and nothing else.

- ``session``: qmail-smtpd or qmail-popup's chain as a child process whose
  fd 0 and fd 1 are a socket, as under tcpserver, the client's turns played
  to it with pexpect reading the replies (harness.converse);
- ``program``: qmail-inject as a child process, the message on stdin, its
  output read to the end.
- ``idle``: the first time, ``DIR/bin/qmail-start ./Maildir/`` without a
  logger (qmail-send then logs to descriptor 0, qmail-start.c, so the log
  file is given as stdin and stdout; qmail-start execs qmail-send, so the
  child's pid is qmail-send's); later, SIGCONT. Then it runs until it is
  quiet: nothing in todo/, every ``starting delivery N`` answered by a
  ``delivery N:`` line, and no new log line for :data:`QUIET` seconds; and
  SIGSTOP. Between ``run`` steps one qmail-send is stopped, which is what
  the simulator's "deliveries happen only in run steps" means for a real
  qmail: it keeps its schedule, its control files and its numbering.
- ``signal``: ALRM and HUP are sent when qmail-send next runs (held while
  it is stopped); TERM at once, and qmail-send is waited for as it exits.
- ``next_retry``: qmail-send's schedule, which it writes down only as it
  exits (:meth:`QmailServer.next_retry`).
"""

from __future__ import annotations

import grp
import math
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.converse import Turn, converse
from harness.targets.agentwire import Setup
from harness.targets.liveagent import Loop, World, write_resolv_conf
from harness.targets.qmaillog import STARTING, QmailLog
from harness.targets.simhome import user_home
from server.privsep import QmailIds
from server.send.schedule import SLEEP_FUZZ

QUIET = 0.6  # seconds without a new log line that count as idle
START_LIMIT = 30.0  # wall seconds qmail-send may take to log its first line
IDLE_LIMIT = 120.0
PROGRAM_LIMIT = 60.0
SIGNALS = {"alrm": signal.SIGALRM, "hup": signal.SIGHUP}  # held for the next run
RESULT = re.compile(r"^delivery (\d+): ")
#: Programs whose replies are netstrings; tcpserver runs them as qmaild, as qmail-smtpd (FAQ 5.6).
NETSTRING_SERVERS = ("qmail-qmtpd", "qmail-qmqpd")


class QmailServer:
    def __init__(self, setup: Setup, world: World, loop: Loop) -> None:
        self.setup, self.world, self.loop = setup, world, loop
        self.home = setup.home
        self.log_path = setup.workdir / "qmail-send.log"
        self.log = QmailLog(self.log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pending: list[str] = []  # signals for qmail-send's next run
        self.terminated = False
        self.started_before = False
        self.virtual = 0  # seconds jumped so far (advance)
        self.synced = int(world.start_time)  # the real second the queue was last in step
        self.since = 0  # the first log line of the qmail-send running now
        self.dilated_dir: Path | None = None  # dilate_remote's wrapper

    def request(self, verb: str, args: dict[str, Any]) -> object:
        if verb == "start":
            path = self.setup.workdir / "resolv.conf"
            write_resolv_conf(path, args["nameservers"])
            if self.setup.netns:
                from harness import netns

                netns.bind_resolv_conf(path)
                self._bind_localtime()
                bind_alias_home(self.home)
                if self.world.dilated:
                    scratch = tempfile.mkdtemp(prefix="qmail-sim-remote-", dir="/tmp")
                    self.dilated_dir = Path(scratch)
                    dilate_remote(self.home, self.dilated_dir)
            return None
        if verb == "program":
            return self.program(args["argv"], args["env"], args["stdin"], args.get("cwd", "/"))
        if verb == "session":
            return self.session(args["argv"], args["env"], args["played"])
        if verb == "idle":
            self.run_until_idle()
            return None
        if verb == "start_send":
            self._start()
            self._settle(None)
            return None
        if verb == "signal":
            self.signal(args["name"])
            return None
        if verb == "observe":
            seen = self.world.observe()
            seen["log"] = self.log_lines()
            return seen
        if verb == "next_retry":
            return self.next_retry()
        if verb == "advance":
            self.advance(float(args["seconds"]), int(args["passes"]))
            return None
        raise ValueError(f"the qmail target cannot {verb!r}")

    def _bind_localtime(self) -> None:
        """The scenario's ``localtime`` over /etc/localtime (harness.targets.zone)."""
        from harness.targets.zone import bind_localtime, install_localtime

        copy = install_localtime(self.setup.workdir / "zone", self.setup.scenario)
        if copy is not None:
            bind_localtime(copy)

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        return {"PATH": f"{self.home / 'bin'}:/usr/bin:/bin", **self.setup.env, **extra}

    def program(
        self, argv: list[str], env: dict[str, str], stdin: bytes, cwd: str = "/"
    ) -> tuple[int, bytes, bytes]:
        with subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(env),
            cwd=cwd,
            start_new_session=True,
        ) as proc:
            out, err = proc.communicate(stdin, timeout=PROGRAM_LIMIT)
        wait_for_group(proc.pid)
        return proc.returncode, out, err

    def session(
        self, argv: list[str], env: dict[str, str], played: list[Turn]
    ) -> tuple[int, bytes, bytes]:
        """The program's fd 0 and fd 1 one end of a socketpair, as under tcpserver
        (where both are the connection); the client plays the other end."""
        ours, theirs = socket.socketpair()
        with ours, tempfile.TemporaryFile() as err:
            with theirs:
                proc = subprocess.Popen(
                    argv,
                    stdin=theirs.fileno(),
                    stdout=theirs.fileno(),
                    stderr=err,
                    env=self.env(env),
                    cwd="/",
                    start_new_session=True,
                    **smtpd_credentials(argv[0], self.home),
                )
            try:
                output = converse(ours, played, netstrings=Path(argv[0]).name in NETSTRING_SERVERS)
                code = proc.wait(PROGRAM_LIMIT)
                wait_for_group(proc.pid)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            return code, output, err.read()

    def log_lines(self) -> list[str]:
        return self.log.lines()

    def _stop_hidden(self) -> None:
        """Stop qmail-send so that its schedule is on disk (pqfinish), its
        ``status: exiting`` hidden: the harness's doing, not the scenario's;
        then bring that schedule to the scenario's clock (:meth:`_sync`)."""
        before = len(self.log.raw())
        self._stop()
        self.log.hide_since(before)
        self._sync()

    def advance(self, seconds: float, passes: int) -> None:
        """The queue-time fudge (harness.targets.qmailclock): jump to each due
        retry on the way, as the simulator does, running qmail-send at each;
        then to the end, and run it until idle. The fake DNS's clock (the
        offset file) moves with the queue's."""
        from harness.targets.qmailclock import earliest_retry, jump_to

        target = self.virtual + round(seconds)
        for _ in range(passes):
            if self.terminated:
                break
            self._stop_hidden()
            now = time.time()
            due = earliest_retry(self.home, now)
            jump = None if due is None else jump_to(due, now)
            if jump is None or self.virtual + jump > target:
                break
            self._jump(jump)
            self.run_until_idle()
        self._stop_hidden()
        self._jump(target - self.virtual)
        self._run_if_due()

    def _run_if_due(self) -> None:
        """After a jump: run qmail-send until idle if the jump made anything due
        (a retry, a message in todo/ or a bounce to inject) or a signal waits
        for it. Else it stays stopped: it would only sleep in select() until
        the next retry, as the simulator's does, but on a real clock that
        runs on into that retry while it settles."""
        from harness.targets.qmailclock import earliest_retry

        now = time.time()
        due = earliest_retry(self.home, now)
        if self.pending or (due is not None and due <= now):
            self.run_until_idle()

    def _sync(self) -> None:
        """With qmail-send stopped: take the real seconds that passed since the
        last catching up back off the queue's age, message by message
        (harness.targets.qmailclock.catch_up). The simulator's clock stands
        still between its jumps; qmail's runs on, and each pass costs a second
        or so of it, which would otherwise add up to an extra retry. Counted
        in the whole seconds qmail reads (now.c), so qmail-send's clock reads
        the scenario's at once after, and a message it writes is born in or
        after the second that was caught up to."""
        from harness.targets.qmailclock import catch_up

        now = max(self.synced, math.floor(time.time()))
        catch_up(self.home, self.synced, now)
        self.synced = now

    def _jump(self, seconds: int) -> None:
        """With qmail-send stopped: the queue, the mail delivered so far and the
        fake DNS ``seconds`` on."""
        from harness.targets.qmailclock import age_maildirs, age_queue

        age_queue(self.home, seconds)
        age_maildirs(self._maildirs(), seconds)
        self.world.set_time(self.world.clock.now() + seconds)
        self.virtual += seconds

    def _maildirs(self) -> list[Path]:
        """The scenario's users' Maildirs, and the alias user's."""
        users = self.setup.scenario.users.values()
        homes = [user_home(self.setup.workdir, user) for user in users]
        return [home / "Maildir" for home in (*homes, self.home / "alias")]

    def _quiet(self) -> bool:
        from harness.targets.qmailclock import untaken

        lines = self.log_lines()[self.since :]  # delivery numbers start at 1 in each run
        started = {m.group(1) for line in lines if (m := STARTING.match(line))}
        done = {m.group(1) for line in lines if (m := RESULT.match(line))}
        return started <= done and not untaken(self.home)

    def run_until_idle(self) -> None:
        if self.proc is None:
            if self.terminated:
                return  # after TERM nothing runs, as on the simulator
            self._start()
        proc = self.proc
        assert proc is not None
        if proc.poll() is not None:
            return  # it died on its own: nothing runs, as qmail-send is gone
        for name in self.pending:
            proc.send_signal(SIGNALS[name])
        self.pending = []
        proc.send_signal(signal.SIGCONT)
        try:
            self._wait_quiet()
        finally:
            self._pause()
        owed = round(self.world.take_owed())
        if owed and not self.terminated:
            # the peers' delays took this long in the scenario: qmail-send's
            # clock jumps as the queue's (harness.targets.qmailclock), and what
            # the wait made due is tried, as it is at once on the simulator
            self._stop_hidden()
            self._jump(owed)
            self._run_if_due()

    def signal(self, name: str) -> None:
        """As the simulator: ALRM and HUP reach qmail-send when it next runs
        (held while it is stopped); TERM lets it finish and exit now, so its
        ``status: exiting`` is logged at once."""
        if name != "term":
            if self.proc is not None and self.proc.poll() is None:
                self._act_on(SIGNALS[name])
            else:
                self.pending.append(name)
            return
        if self.proc is None and self.started_before and not self.terminated:
            # left stopped after a jump (_run_if_due): it starts, sleeps, and
            # takes the TERM there, logging its exit as the simulator's does
            self._start()
            self._settle(None)
        self.terminated = True
        self._stop()

    def _act_on(self, signum: int) -> None:
        """Let the stopped qmail-send take ``signum`` now, and stop it again once
        it is back asleep in select(): as the simulator's flags are acted on
        before anything a later step brings. (Held until the next run, the
        signal and a trigger pulled meanwhile would reach it together, and
        qmail-send.c's select() may return the trigger first: todo/ would be
        read before HUP's reread.)"""
        assert self.proc is not None
        self.proc.send_signal(signum)
        self.proc.send_signal(signal.SIGCONT)
        self._settle(signum)

    def _settle(self, signum: int | None) -> None:
        """Stop qmail-send once it sleeps in select() with no ``signum`` pending."""
        assert self.proc is not None
        deadline = time.monotonic() + START_LIMIT
        settled = 0
        while settled < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
            asleep = _asleep_without(self.proc.pid, signum)
            if asleep is None:
                break  # /proc cannot tell: stop it again at once, as before
            settled = settled + 1 if asleep else 0
        self._pause()

    def _start(self) -> None:
        """qmail-start, and qmail-send's first log line. qmail-send reads its
        schedule from the queue as it starts (pqstart): the queue is brought to
        the scenario's clock first, so a message injected while none ran is
        as young when it is first tried as on the simulator."""
        self._sync()
        before = self.since = len(self.log_lines())
        raw = len(self.log.raw())
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.home / "bin" / "qmail-start"), "./Maildir/"],
                stdin=log,
                stdout=log,
                stderr=log,
                env=self.env({}),
                cwd="/",
            )
        self._wait_started(before)
        if self.started_before:  # a restart's: see harness.targets.qmaillog
            self.log.restarted_at(raw)
        self.started_before = True

    def _pause(self) -> None:
        """Between run steps qmail-send is stopped (SIGSTOP): what reaches it
        meanwhile, a trigger pull or a signal, waits until the next run."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def _wait_started(self, before: int) -> None:
        deadline = time.monotonic() + START_LIMIT
        assert self.proc is not None
        while len(self.log_lines()) <= before:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qmail-start exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("qmail-send logged nothing")
            time.sleep(0.05)

    def _wait_quiet(self) -> None:
        deadline = time.monotonic() + IDLE_LIMIT
        size, since = -1, time.monotonic()
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"qmail-send still busy after {IDLE_LIMIT:g}s")
            current = os.stat(self.log_path).st_size
            if current != size:
                size, since = current, now
            elif now - since >= QUIET and self._quiet():
                return
            time.sleep(0.05)

    def _stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.send_signal(signal.SIGCONT)
            try:
                self.proc.wait(IDLE_LIMIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def next_retry(self) -> float | None:
        """When qmail-send next retries, in seconds since the message's birth.

        Real time passes while qmail-send starts and works, so the retry is
        measured from the birth it is computed from (the info file's mtime,
        qmail-send.c getinfo) rather than from the scenario's start: without
        ``advance`` (not comparable here) every message of a scenario is born
        at the simulator's start.

        qmail-send keeps its schedule in memory and writes it down only as
        it exits: each channel file's mtime becomes its next retry time
        (pqfinish's utime). So a qmail-send that runs is stopped with TERM
        to read it, and started again: asked only by an ``expect`` on the
        next retry, since a fresh qmail-send rereads its control files.
        """
        if self.terminated:
            return None
        queue = self.home / "queue"
        channels = [p for c in ("local", "remote") for p in (queue / c).rglob("*") if p.is_file()]
        if not channels:
            return None
        self._stop_hidden()
        self._start()
        self._pause()
        waits = [w for p in channels if (w := _retry_after_birth(queue, p)) is not None]
        return min(waits) + SLEEP_FUZZ if waits else None

    def close(self) -> None:
        self._stop()
        if self.dilated_dir is not None:
            shutil.rmtree(self.dilated_dir, ignore_errors=True)


def _retry_after_birth(queue: Path, channel_file: Path) -> float | None:
    """A channel file's retry time (its mtime) less its message's birth, which
    qmail-send takes in whole seconds (st_mtime in getinfo)."""
    info = queue / "info" / channel_file.parent.name / channel_file.name
    try:
        return channel_file.stat().st_mtime - int(info.stat().st_mtime)
    except FileNotFoundError:
        return None


#: qmail's run script for qmail-smtpd: ``tcpserver -u QMAILDUID -g NOFILESGID``
#: (INSTALL, the FAQ). qmail-queue writes "invoked from network" only when its
#: real uid is qmaild's (qmail-queue.c), so it matters who runs qmail-smtpd.
SMTPD_USER, SMTPD_GROUP = "qmaild", "nofiles"


def smtpd_credentials(program: str, home: Path) -> dict[str, Any]:
    """Popen's user and group for qmail-smtpd as tcpserver runs it: qmaild and
    nofiles when we are root and the system has them; nothing otherwise, nor
    for a one-user home of ours (one owner, and its qmail-queue words the
    Received line by caller, not by uid). A split home of ours is run as
    qmail's is."""
    if Path(program).name not in ("qmail-smtpd", *NETSTRING_SERVERS) or os.geteuid() != 0:
        return {}
    if (home / ".qmail-sim").is_dir() and QmailIds.of_home(home) is None:
        return {}
    try:
        uid = pwd.getpwnam(SMTPD_USER).pw_uid
        gid = grp.getgrnam(SMTPD_GROUP).gr_gid
    except KeyError:
        return {}
    return {"user": uid, "group": gid, "extra_groups": []}


def wait_for_group(pgid: int, limit: float = PROGRAM_LIMIT) -> None:
    """Wait until no live process is left in process group ``pgid``.

    A program run in a session of its own may leave children behind:
    qmail-smtpd forks qmail-queue at DATA and, after a 451 for a bare LF,
    exits without waiting for it, and qmail-queue then removes its half-made
    message. The queue is looked at only after that. (Zombies do not count:
    their parent, now init, reaps them in its own time.)
    """
    deadline = time.monotonic() + limit
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _group_alive(pgid: int) -> bool:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def alias_home() -> Path | None:
    """The alias user's home as the password file gives it, or None."""
    try:
        return Path(pwd.getpwnam("alias").pw_dir)
    except KeyError:
        return None


def bind_alias_home(home: Path) -> None:
    """Inside the agent's mount namespace: DIR/alias over the alias user's home.

    qmail-getpw answers for the alias user with its home from the password
    file (qmail-getpw.c, getpwnam(auto_usera)), usually /var/qmail/alias,
    whatever DIR is; the scenario's alias files are written to DIR/alias.
    Mounted over the passwd home for the agent's process tree only, they are
    what the reference's qmail-local reads and where its ``./Maildir/`` is.
    A home of ours takes DIR/alias whatever the password file says.
    """
    from harness import netns

    target = alias_home()
    if (home / ".qmail-sim").is_dir() or target is None:
        return
    if target.resolve() != (home / "alias").resolve():
        netns.bind_over(home / "alias", target)


def dilate_remote(home: Path, scratch: Path) -> None:
    """Inside the agent's mount namespace: DIR/bin/qmail-remote runs on a fast
    clock (harness.targets.qmailclock.DILATION).

    A wrapper mounted over it (``scratch``, open to qmailr) preloads
    libfaketime into qmail-remote alone: preloaded into qmail-start,
    libfaketime's shared memory, made by root, is closed to the qmail-send
    that qmail-start becomes under the same pid. qmail-remote leaves with
    _exit(), so that shared memory (named by its pid) is never removed: the
    wrapper removes it once qmail-remote is gone. (It runs qmail-remote in
    the foreground: dash's ``wait`` never returns with SIGCHLD blocked, as
    qmail-rspawn leaves it.)"""
    import shlex

    from harness import netns
    from harness.targets.qmailclock import dilated, libfaketime

    library = libfaketime()
    if library is None:
        raise RuntimeError("peers with delays need libfaketime (apt-get install libfaketime)")
    scratch.chmod(0o755)  # mkdtemp's 0700 would shut qmailr out
    real = scratch / "qmail-remote"
    shutil.copy2(home / "bin" / "qmail-remote", real)
    settings = " ".join(f"{k}={shlex.quote(v)}" for k, v in dilated(library).items())
    wrapper = scratch / "qmail-remote-dilated"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'{settings} {shlex.quote(str(real))} "$@"\n'
        "code=$?\n"
        "# the shared memory of this user's qmail-remotes that are gone\n"
        "for sem in /dev/shm/sem.faketime_sem_*; do\n"
        "  pid=${sem##*_}\n"
        '  if [ -O "$sem" ] && ! kill -0 "$pid" 2>/dev/null; then\n'
        '    rm -f "$sem" "/dev/shm/faketime_shm_$pid"\n'
        "  fi\n"
        "done\n"
        'exit "$code"\n'
    )
    wrapper.chmod(0o755)
    netns.bind_over(wrapper, home / "bin" / "qmail-remote")


__all__ = [
    "QmailServer",
    "alias_home",
    "bind_alias_home",
    "dilate_remote",
    "smtpd_credentials",
]


def _asleep_without(pid: int, signum: int | None) -> bool | None:
    """Whether process ``pid`` has no ``signum`` pending (if given) and sleeps in
    select() or poll() (its wchan); None if /proc cannot tell (no such
    files, or a kernel that shows no wait channel: "0")."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return None
    if wchan in ("", "0"):
        return None
    bit = 0 if signum is None else 1 << (signum - 1)
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigPnd", "ShdPnd") and int(value.strip(), 16) & bit:
            return False
    return wchan.startswith("poll_schedule_timeout")
