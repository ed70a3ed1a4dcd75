"""Test kit for qmail-send: a home on a virtual clock, scripted channels, a driver."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from server.home import config_fast, make_tree
from server.programs import ProgramContext
from server.queue.client import queue_message
from server.runtime import VirtualClock, virtual_runtime
from server.send.core import QmailSend
from server.spawn import ChannelName, DeliveryJob

BODY = b"Subject: hi\n\nhello\n"


@dataclass
class ScriptedChannel:
    """Answers each delivery with ``script(job)``; records every job it saw."""

    script: Callable[[DeliveryJob], bytes] = lambda job: b"Kdelivered\n"
    seen: list[DeliveryJob] = field(default_factory=list)
    #: the message bytes of each delivery, read when it was made
    texts: list[bytes] = field(default_factory=list)

    def deliver(self, job: DeliveryJob) -> bytes:
        self.seen.append(job)
        self.texts.append(job.message.read_bytes())
        return self.script(job)


@dataclass
class Sim:
    home: Path
    ctx: ProgramContext
    clock: VirtualClock
    local: ScriptedChannel
    remote: ScriptedChannel
    lines: list[str]
    send: QmailSend | None = None

    def control(self, name: str, text: str) -> None:
        (self.home / "control" / name).write_text(text)

    def queue(self, sender: str, recipients: list[str], body: bytes = BODY) -> int:
        result = queue_message(self.ctx, {}, body, sender, recipients, invoker=1000)
        assert result.error == "", result.error
        assert result.msgid is not None
        return result.msgid

    def start(self) -> QmailSend:
        channels: dict[ChannelName, ScriptedChannel] = {"local": self.local, "remote": self.remote}
        self.send = QmailSend(self.ctx, channels, self.lines.append)
        return self.send

    def advance(self, seconds: float) -> None:
        assert self.send is not None
        target = self.clock.t + seconds
        while True:
            w = self.send.next_wakeup()
            if w is None or w > target:
                break
            self.clock.set(w)
            self.send.run_due()
        self.clock.set(target)
        self.send.run_due()

    def files(self, sub: str) -> list[Path]:
        return sorted(p for p in (self.home / "queue" / sub).rglob("*") if p.is_file())


def make_sim(home: Path) -> Sim:
    # make setup without bin/: everything here runs in-process, and writing
    # bin/ is most of setup()'s time
    make_tree(home)
    config_fast(home, "mx.example.org")
    runtime, clock = virtual_runtime(seed=1)
    runtime.fsync = False
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
    return Sim(home, ctx, clock, ScriptedChannel(), ScriptedChannel(), [])
