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
- ``idle``: ``DIR/bin/qmail-start ./Maildir/`` without a logger (qmail-send
  then logs to descriptor 0, qmail-start.c, so the log file is given as
  stdin and stdout) until qmail-send is quiet: nothing in todo/, every
  ``starting delivery N`` answered by a ``delivery N:`` line, and no new
  log line for :data:`QUIET` seconds. Then TERM (qmail-start execs
  qmail-send, so the child's pid is qmail-send's) and wait for it to exit.
  Between ``run`` steps qmail-send is not running, which is what the
  simulator's "deliveries happen only in run steps" means for a real qmail.
- ``signal``: ALRM is sent when qmail-send next runs (it sleeps until then);
  HUP and TERM need nothing, as a fresh qmail-send reads its controls.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
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
from server.send.schedule import SLEEP_FUZZ

QUIET = 0.6  # seconds without a new log line that count as idle
START_LIMIT = 30.0  # wall seconds qmail-send may take to log its first line
IDLE_LIMIT = 120.0
PROGRAM_LIMIT = 60.0
STARTING = re.compile(r"^starting delivery (\d+):")
RESULT = re.compile(r"^delivery (\d+): ")


class QmailServer:
    def __init__(self, setup: Setup, world: World, loop: Loop) -> None:
        self.setup, self.world, self.loop = setup, world, loop
        self.home = setup.home
        self.log_path = setup.workdir / "qmail-send.log"
        self.log_path.touch()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pending_alarm = False
        self.terminated = False

    def request(self, verb: str, args: dict[str, Any]) -> object:
        if verb == "start":
            path = self.setup.workdir / "resolv.conf"
            write_resolv_conf(path, args["nameservers"])
            if self.setup.netns:
                from harness import netns

                netns.bind_resolv_conf(path)
            return None
        if verb == "program":
            return self.program(args["argv"], args["env"], args["stdin"])
        if verb == "session":
            return self.session(args["argv"], args["env"], args["played"])
        if verb == "idle":
            self.run_until_idle()
            return None
        if verb == "signal":
            # qmail-send runs only inside a run step here: ALRM waits for the
            # next start; after TERM it is gone, as the simulator's is.
            self.pending_alarm = self.pending_alarm or args["name"] == "alrm"
            self.terminated = self.terminated or args["name"] == "term"
            return None
        if verb == "observe":
            seen = self.world.observe()
            seen["log"] = self.log_lines()
            seen["next_retry"] = self.next_retry(float(seen["start"]))  # type: ignore[arg-type]
            return seen
        raise ValueError(f"the qmail target cannot {verb!r}")

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        return {"PATH": f"{self.home / 'bin'}:/usr/bin:/bin", **self.setup.env, **extra}

    def program(
        self, argv: list[str], env: dict[str, str], stdin: bytes
    ) -> tuple[int, bytes, bytes]:
        done = subprocess.run(
            argv,
            input=stdin,
            env=self.env(env),
            capture_output=True,
            timeout=PROGRAM_LIMIT,
            check=False,
            cwd="/",
        )
        return done.returncode, done.stdout, done.stderr

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
                    **smtpd_credentials(argv[0]),
                )
            try:
                output = converse(ours, played)
                code = proc.wait(PROGRAM_LIMIT)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            return code, output, err.read()

    def log_lines(self) -> list[str]:
        text = self.log_path.read_bytes().decode("latin-1")
        return [line for line in text.split("\n") if line]

    def _quiet(self) -> bool:
        lines = self.log_lines()
        started = {m.group(1) for line in lines if (m := STARTING.match(line))}
        done = {m.group(1) for line in lines if (m := RESULT.match(line))}
        todo = self.home / "queue" / "todo"
        waiting = any(p.is_file() for p in todo.rglob("*"))
        return not waiting and started <= done

    def run_until_idle(self) -> None:
        if self.terminated:
            return
        before = len(self.log_lines())
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.home / "bin" / "qmail-start"), "./Maildir/"],
                stdin=log,
                stdout=log,
                stderr=log,
                env=self.env({}),
                cwd="/",
            )
        try:
            self._wait_started(before)
            if self.pending_alarm:
                self.proc.send_signal(signal.SIGALRM)
                self.pending_alarm = False
            self._wait_quiet()
        finally:
            self._stop()

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
            try:
                self.proc.wait(IDLE_LIMIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def next_retry(self, start: float) -> float | None:
        """qmail-send stamps each channel file with its next retry time when it
        exits (pqfinish's utime), and it is stopped after every run here."""
        if self.terminated:
            return None
        queue = self.home / "queue"
        times = [p.stat().st_mtime for c in ("local", "remote") for p in (queue / c).rglob("*")
                 if p.is_file()]  # fmt: skip
        if not times:
            return None
        return max(min(times), time.time()) + SLEEP_FUZZ - start

    def close(self) -> None:
        self._stop()


#: qmail's run script for qmail-smtpd: ``tcpserver -u QMAILDUID -g NOFILESGID``
#: (INSTALL, the FAQ). qmail-queue writes "invoked from network" only when its
#: real uid is qmaild's (qmail-queue.c), so it matters who runs qmail-smtpd.
SMTPD_USER, SMTPD_GROUP = "qmaild", "nofiles"


def smtpd_credentials(program: str) -> dict[str, Any]:
    """Popen's user and group for qmail-smtpd as tcpserver runs it: qmaild and
    nofiles when we are root and the system has them; nothing otherwise."""
    if Path(program).name != "qmail-smtpd" or os.geteuid() != 0:
        return {}
    try:
        uid = pwd.getpwnam(SMTPD_USER).pw_uid
        gid = grp.getgrnam(SMTPD_GROUP).gr_gid
    except KeyError:
        return {}
    return {"user": uid, "group": gid, "extra_groups": []}


def queue_files(home: Path) -> list[Path]:
    """Every message file in a home's queue (what a scenario leaves behind)."""
    queue = home / "queue"
    subs = ("mess", "info", "local", "remote", "todo", "intd", "bounce")
    return [p for sub in subs for p in (queue / sub).rglob("*") if p.is_file()]


__all__ = ["QmailServer", "queue_files", "smtpd_credentials"]
