"""qmail-send's daemon in the live agent: behind a gate, on the offset clock.

The simulator delivers only in ``run``, ``advance`` and ``signal`` steps; so
that a scenario can look at the queue between steps, :class:`GatedSend` runs
:class:`server.send.daemon.Daemon`'s loop body (``_once``, qmail-send.c's
main loop) only while its gate is open. qmail-queue's trigger pulls made
meanwhile wait in the named pipe, as they would for a busy qmail-send.

``run`` opens the gate until qmail-send is idle: no report waiting, no
delivery in flight, no signal pending, nothing in todo/ and nothing due —
seen twice in a row, polled, with a wall-clock bound. ``advance`` moves the
offset clock (World.set_time) to each due retry in turn, as the simulator
does, and pulls the trigger so the daemon looks at the time again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.mailboxes import dated_on_purpose
from harness.targets.agentwire import Setup
from harness.targets.liveagent import World
from harness.targets.simhome import user_home
from server.programs import ProgramContext
from server.send.schedule import SLEEP_FUZZ

POLL = 0.02  # seconds between two looks at the daemon
IDLE_LIMIT = 20.0  # wall seconds a run waits for the daemon (under limits.wall)
TODO_WAITS = "todo/ is not empty"


class GatedSend:
    def __init__(
        self, ctx: ProgramContext, setup: Setup, world: World, log: Callable[[str], None]
    ) -> None:
        self.ctx, self.setup, self.world, self.log = ctx, setup, world, log
        self.home = ctx.home
        self.send_thread: threading.Thread | None = None
        self.daemon: Any = None
        self.gate = threading.Event()
        self.stamped: set[str] = set()

    def start(self) -> None:
        """qmail-send's daemon on its real channels, in a thread behind a gate.

        The simulator delivers only in ``run``, ``advance`` and ``signal``
        steps; so that a scenario can look at the queue between steps, the
        daemon's loop (Daemon._once, qmail-send.c's main loop body) turns only
        while the gate is open. qmail-queue's trigger pulls made meanwhile
        wait in the named pipe, as they would for a busy qmail-send.
        """
        from harness.targets.zone import zone_env
        from server.send.config import SendConfig
        from server.send.daemon import Daemon
        from server.send.program import real_channels

        cfg = SendConfig.read(self.home / "control")
        from server.local.lspawn import default_env

        # qmail's rc starts qmail-start with PATH=HOME/bin:$PATH, which |programs inherit
        channels = real_channels(self.ctx, default_env(self.home), "./Maildir/")
        env = zone_env(self.setup.scenario)  # qmail-start's environment
        self.daemon = Daemon(self.ctx, channels, self.log, cfg=cfg, env=env, max_sleep=POLL)
        self.gate = threading.Event()
        self.send_thread = threading.Thread(target=self._send_loop, name="qmail-send", daemon=True)
        self.send_thread.start()

    def _send_loop(self) -> None:
        daemon = self.daemon
        assert daemon is not None
        sched = daemon.engine.sched
        try:
            while not (sched.exitasap and sched.can_exit()):
                self.gate.wait()
                daemon._once()
            daemon.engine.finish()
        finally:
            daemon.pool.shutdown(wait=True)
            daemon.trigger.close()
            os.close(daemon.wake_r)
            os.close(daemon.wake_w)

    def running(self) -> bool:
        return self.send_thread is not None and self.send_thread.is_alive()

    def signal(self, name: str) -> None:
        """As the simulator: ALRM and HUP set qmail-send's flags, acted on in the
        next run; TERM lets it finish what runs and exit (qmail-send(8))."""
        if self.daemon is None or not self.running():
            return
        {"alrm": self.daemon.alarm, "hup": self.daemon.hangup, "term": self.daemon.terminate}[
            name
        ]()
        if name == "term":
            self.gate.set()
            assert self.send_thread is not None
            self.send_thread.join(IDLE_LIMIT)

    def _busy(self) -> str | None:
        """Why qmail-send is not idle yet, or None when it is."""
        from server.send.schedule import CHANNELS

        daemon = self.daemon
        if daemon is None or not self.running():
            return None
        engine = daemon.engine
        sched = engine.sched
        now = self.ctx.runtime.now()
        reasons = {
            "a report waits": not daemon.reports.empty(),
            "deliveries in flight": any(sched.slots[c].used for c in CHANNELS),
            "a signal waits": sched.runasap or sched.readasap,
            TODO_WAITS: bool(engine.store.todo_ids()),
            "something is due": engine.wakeup(now) <= now,
            # between two selects the loop may be queueing a bounce or
            # reading a report: only a loop asleep in select() is idle
            "its loop is turning": not daemon.asleep,
        }
        return next((why for why, yes in reasons.items() if yes), None)

    def wait_idle(self) -> None:
        """Open the gate until qmail-send has nothing to do now (seen twice)."""
        deadline = time.monotonic() + IDLE_LIMIT
        quiet = 0
        self.gate.set()
        try:
            waited = 0
            while quiet < 2:
                time.sleep(POLL)
                why = self._busy()
                quiet = 0 if why else quiet + 1
                waited = waited + 1 if why == TODO_WAITS else 0
                if waited > 5:
                    # A trigger pull made while qmail-send reopened lock/trigger
                    # is lost (trigger.c closes, then opens; triggerpull.c gets
                    # ENXIO). qmail-send scans todo/ anyway every SLEEP_TODO
                    # (1500 s); the simulator scans on every pass. Pull again.
                    self._nudge()
                    waited = 0
                if why and time.monotonic() > deadline:
                    raise TimeoutError(f"qmail-send still busy after {IDLE_LIMIT:g}s: {why}")
        finally:
            self.gate.clear()

    def next_wakeup(self) -> float | None:
        """As the simulator's: the earliest due time (or now) plus SLEEP_FUZZ."""
        daemon = self.daemon
        if daemon is None or not self.running():
            return None
        due = daemon.engine.next_due()
        if due is None:
            return None
        return float(max(due, self.ctx.runtime.now()) + SLEEP_FUZZ)

    def _nudge(self) -> None:
        """After a clock jump: a trigger pull makes the daemon look at the time again."""
        self.ctx.runtime.fileops.pull_trigger(self.home / "queue" / "lock" / "trigger")

    def advance(self, seconds: float, passes: int) -> None:
        """Jump to each wake-up on the way, as the simulator does, then to the end."""
        target = self.world.clock.now() + seconds
        for _ in range(passes):
            self.wait_idle()
            wake = self.next_wakeup()
            if wake is None or wake > target:
                break
            self.world.set_time(wake)
            self._nudge()
        self.world.set_time(target)
        self._nudge()
        self.wait_idle()
        self.stamp_deliveries()

    def stamp_deliveries(self) -> None:
        """Give mail delivered in this step the clock's time as its mtime, as the
        simulator does: qmail-pop3d (maildir.c) lists a message only when its
        mtime is before ``now``, and ``now`` here is the offset clock, which
        runs ahead of the file system's after a whole-second start or an
        ``advance``. A file whose date was set on purpose keeps it."""
        now = self.ctx.runtime.now()
        for user in self.setup.scenario.users.values():
            home = user_home(self.setup.workdir, user)
            for sub in ("new", "cur"):
                folder = home / "Maildir" / sub
                if not folder.is_dir():
                    continue
                for entry in os.scandir(folder):
                    if entry.path not in self.stamped:
                        self.stamped.add(entry.path)
                        if not dated_on_purpose(entry.path):
                            os.utime(entry.path, (now, now))

    def close(self) -> None:
        if self.daemon is not None and self.running():
            self.daemon.terminate()
            self.gate.set()
            assert self.send_thread is not None
            self.send_thread.join(10.0)


__all__ = ["GatedSend"]
