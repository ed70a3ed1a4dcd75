"""Run one scenario on two targets and find the first place they differ.

Each side is played step by step through a :class:`Recorder`, a Target that
passes every call on and writes down what came back, per step, as text
lines: the server's lines of a session, the output and exit of an injection,
qmail-send's new log lines after ``run``/``advance``/``signal``, and for an
``expect`` a digest of the world (queue directories, each Maildir's and
mbox's messages, what each peer received, the DNS questions asked). Both
records are normalised (:func:`normalise`) before they are compared, because
some things must differ between two runs of the same mail system: process
ids (``qp``, ``uid``, ``qmail N invoked``), inode-numbered message ids,
times and dates, host names, and the byte counts and Maildir names built
from them.

A step the reference cannot do (qmail's clock cannot jump) raises
:class:`NotComparable`; the comparison then ends there and says so, never
counting it as identical. Failed expectations are recorded, not fatal: two
targets that fail the same expectation the same way are still identical.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.converse import Turn
from harness.outcome import StepFailure
from harness.runner import default_workroot, describe_step
from harness.scenario.model import InjectStep, ProgramStep, Scenario, SessionStep, SignalName
from harness.steps import execute
from harness.targets import make_target
from harness.targets.base import Observation, ProgramResult, StepError, Target

Verdict = Literal["identical", "differs", "not comparable", "error"]


class NotComparable(StepError):
    """The reference target cannot do this step (e.g. jumping the clock)."""


#: the start of each side's work directory's name; a line that shows the
#: directory is masked by it (see the last rule of _RULES naming it)
WORKDIR_PREFIX = "qmail-cmp-"

_RULES: list[tuple[re.Pattern[str], str]] = [
    # Maildir names: time.pid(_n).host (and .Pn/.Mn variants) — maildir.c
    (re.compile(r"\b\d{9,11}\.[\w.]+?\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?=:2,|\b)"), "<mdname>"),
    # a QMTP/QMQP answer's netstring length counts the digits of its time and qp
    (re.compile(r"\b\d+:Kok \d+ qp \d+,"), "N:Kok N qp N,"),
    (re.compile(r"\bok \d+ qp \d+"), "ok N qp N"),
    (re.compile(r"\b(msg|qp|uid|pid|bytes) \d+"), r"\1 N"),
    (re.compile(r"\bqmail \d+ invoked"), "qmail N invoked"),
    # after a word character too: "condredirect:_qp_7139", "forward:_qp_N"
    (re.compile(r"(?<![A-Za-z0-9])qp_\d+"), "qp_N"),
    # a per-run work directory (mkdtemp's "qmail-cmp-" and eight characters)
    # wherever a line shows it, whole or cut short by a length limit
    (re.compile(rf"(?:/[^\s/]+)*/{WORKDIR_PREFIX}[a-z0-9_]{{1,8}}"), "<workdir>"),
    # qmail-send numbers deliveries from 1 in each run; the reference target
    # starts it afresh in every run step
    (re.compile(r"\bdelivery \d+:"), "delivery N:"),
    # a fake peer's default end-of-data reply numbers its connections ("250 ok
    # {n}"): two deliveries to one peer at once connect in either order
    (re.compile(r"\b(Remote_host_said:_250_ok_)\d+/"), r"\1N/"),
    # "triple bounce: discarding bounce/N": a message number is an inode
    (re.compile(r"\bbounce/\d+"), "bounce/N"),
    # qmail-inject's Message-ID: <YYYYMMDDHHMMSS.pid.qmail@host> (qmail-inject.c)
    (re.compile(r"<\d{14}\.\d+\.qmail@"), "<DATE.PID.qmail@"),
    (re.compile(r"<\d+\.\d+@[^>]*>"), "<pid.time@host>"),
    # RFC 822 dates as qmail writes them (date822fmt.c), with or without weekday;
    # the zone stays: it is what the date-localtime patch and TZ decide
    (
        re.compile(
            r"(?:\w{3}, )?\d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2} ([-+]\d{4}|GMT|UT)(?: \(\w+\))?"
        ),
        r"<date> \1",
    ),
    # mbox From_ lines carry asctime(): "Tue Nov 14 22:13:20 2023" (qmail-local.c)
    (re.compile(r"\b\w{3} \w{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}\b"), "<asctime>"),
    (re.compile(r"\b\d{9,11}\b"), "<time>"),
    # a POP3 size (STAT's "+OK 1 275", a LIST line "1 275") counts the header
    # lines that carry pids and dates, whose widths differ between two systems
    (re.compile(r"^(\+OK )?(\d+) \d+$"), r"\1\2 <size>"),
]


def normalise(line: str, hosts: Iterable[str] = ()) -> str:
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    for host in sorted({h for h in hosts if h}, key=len, reverse=True):
        line = line.replace(host, "<host>")
    return line


@dataclass
class Record:
    """What one target did: per step, lines of text."""

    steps: list[tuple[str, list[str]]] = field(default_factory=list)
    stopped: str | None = None  # why playing stopped early (not comparable, error)
    hosts: set[str] = field(default_factory=set)
    #: each side plays in a work directory of its own; its path, where a line
    #: shows it (a home in "Unable to switch to ..."), is not a difference
    workdirs: set[str] = field(default_factory=set)

    def masked(self, line: str) -> str:
        for path in sorted(self.workdirs, key=len, reverse=True):
            line = line.replace(path, "<workdir>")
        return line

    def add(self, label: str, lines: Iterable[str]) -> None:
        self.steps.append((label, list(lines)))


class Recorder(Target):
    """A Target that records what another one gives back."""

    def __init__(self, inner: Target, record: Record) -> None:
        self.inner = inner
        self.record = record
        self.name = inner.name
        self.lines: list[str] = []
        self.log_seen = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def start(self, scenario: Scenario, workdir: Path, seed: int | None = None) -> None:
        self.inner.start(scenario, workdir, seed)

    def _program(self, result: ProgramResult, exit_seen: bool) -> ProgramResult:
        self.lines += result.stdout.decode("latin-1").split("\r\n")
        if exit_seen:
            self.lines.append(f"exit {result.exit}")
        return result

    def session(self, step: SessionStep, played: Sequence[Turn]) -> ProgramResult:
        # A client on a socket never sees the server's exit code: not compared.
        result = self.inner.session(step, played)
        if step.kind in ("qmtp", "qmqp"):
            from harness.steps.netstrings import server_netstrings

            self.lines += server_netstrings(result.stdout)
            return result
        return self._program(result, exit_seen=False)

    def inject(self, step: InjectStep) -> ProgramResult:
        return self._program(self.inner.inject(step), exit_seen=True)

    def program(self, step: ProgramStep) -> ProgramResult:
        return self._program(self.inner.program(step), exit_seen=True)

    def _new_log(self) -> None:
        """qmail-send's new lines, sorted and without ``status:`` lines: with
        concurrent deliveries (a live qmail) their interleaving is not fixed."""
        log = list(self.inner.observe().log)
        new = [line for line in log[self.log_seen :] if not line.startswith("status:")]
        self.lines += [f"log: {line}" for line in sorted(new)]
        self.log_seen = len(log)

    def run_until_idle(self) -> None:
        self.inner.run_until_idle()
        self._new_log()

    def advance(self, seconds: float) -> None:
        self.inner.advance(seconds)
        self._new_log()

    def signal(self, name: SignalName) -> None:
        self.inner.signal(name)

    def set_control(self, files: Mapping[str, str | None]) -> None:
        self.inner.set_control(files)

    def observe(self) -> Observation:
        seen = self.inner.observe()
        self.lines += digest(seen)
        return seen

    def close(self) -> None:
        self.inner.close()


_BOUNCE_ENTRIES = re.compile(
    r"(?P<head>\n(?:I'm afraid I wasn't able to deliver your message to the following"
    r" addresses\.\n.*?\n|I tried to deliver a bounce message to this address, but the"
    r" bounce bounced!\n)\n)(?P<entries><.*?\n\n)(?=--- Below this line is )",
    re.DOTALL,
)


def bounce_in_order(body: str) -> str:
    """A bounce with its recipient entries sorted.

    qmail-send appends an entry to bounce/N as each delivery fails
    (addbounce), so concurrent deliveries list their recipients in the order
    they finished, which is not the same twice.
    """

    def sort(found: re.Match[str]) -> str:
        entries = re.split(r"\n\n(?=<)", found["entries"][:-2])
        return found["head"] + "".join(f"{e}\n\n" for e in sorted(entries))

    return _BOUNCE_ENTRIES.sub(sort, body, count=1)


def digest(seen: Observation) -> list[str]:
    """The world as lines: queue counts, mail delivered, peers, DNS questions.

    Deliveries that run at once finish in any order, so what they leave is
    compared as a set: Maildir messages, the messages of an mbox and each
    peer's sessions are listed in the order of their normalised text.
    """
    out = []
    queue = seen.home / "queue"
    for sub in ("mess", "todo", "info", "local", "remote", "bounce"):
        count = sum(1 for p in (queue / sub).rglob("*") if p.is_file())
        out.append(f"queue/{sub}: {count}")
    for user, home in sorted(seen.user_homes.items()):
        for sub in ("new", "cur"):
            folder = home / "Maildir" / sub
            files = sorted(folder.iterdir()) if folder.is_dir() else []
            bodies = [bounce_in_order(p.read_bytes().decode("latin-1")) for p in files]
            out += [f"maildir {user}/{sub}: {len(files)}"]
            out += _blocks(body.split("\n") for body in bodies)
    for name, path in sorted(dict(seen.extra.get("mboxes", {}) or {}).items()):  # type: ignore[call-overload]
        text = Path(path).read_bytes().decode("latin-1") if Path(path).exists() else ""
        out += [f"mbox {name}:", *_blocks(m.split("\n") for m in _MBOX_FROM.split(text))]
    for ip, sessions in sorted(seen.peer_sessions.items()):
        out += _blocks(
            [
                f"peer {ip}: from {s.mail_from} to {s.rcpt} delivered={s.delivered}",
                *(s.data or b"").decode("latin-1").replace("\r\n", "\n").split("\n"),
            ]
            for s in sessions
        )
    out += sorted({f"dns {q.name} {q.type} {q.transport}" for q in seen.dns_queries})
    return out


#: where the next message of an mbox begins: a From_ line (qmail-local.c)
_MBOX_FROM = re.compile(r"(?<=\n)(?=From )")


def _blocks(blocks: Iterable[list[str]]) -> list[str]:
    """Indented lines of each block, the blocks in the order of their normalised text."""
    ordered = sorted(blocks, key=lambda lines: [normalise(line) for line in lines])
    return [f"  {line}" for lines in ordered for line in lines]


def play(scenario: Scenario, target: Target, workdir: Path) -> Record:
    """Play every step on ``target``, recording; failures are recorded, not fatal."""
    record = Record()
    recorder = Recorder(target, record)
    record.workdirs |= {str(workdir), str(workdir.resolve())}
    try:
        recorder.start(scenario, workdir, None)
        record.hosts.add(str(getattr(getattr(target, "runtime", None), "hostname", "")))
        import socket

        record.hosts.add(socket.gethostname())
        for i, step in enumerate(scenario.steps):
            label = describe_step(i, step)
            try:
                execute(step, recorder)
            except StepFailure as exc:
                recorder.lines.append(f"expectation not met: {exc.message}")
            except NotComparable as exc:
                record.stopped = f"not comparable at {label}: {exc}"
                return record
            except Exception as exc:  # recorded as this side's answer
                recorder.lines.append(f"error: {type(exc).__name__}: {exc}")
            record.add(label, recorder.lines)
            recorder.lines = []
    except NotComparable as exc:
        record.stopped = f"not comparable at setup: {exc}"
    except Exception as exc:  # setup failed
        record.stopped = f"error while setting up: {type(exc).__name__}: {exc}"
    finally:
        recorder.close()
    return record


@dataclass(kw_only=True)
class Comparison:
    scenario: Scenario
    verdict: Verdict
    step: str = ""
    line: int = 0
    ours: str = ""
    theirs: str = ""
    note: str = ""
    seconds: float = 0.0


def _sorted_log(lines: list[str]) -> list[str]:
    """Log lines sorted in place among the others, once message ids are normalised
    (inode numbers would otherwise decide the order)."""
    where = [i for i, line in enumerate(lines) if line.startswith("log: ")]
    out = list(lines)
    for i, line in zip(where, sorted(lines[i] for i in where), strict=True):
        out[i] = line
    return out


def first_difference(ours: Record, theirs: Record, scenario: Scenario) -> Comparison:
    hosts = ours.hosts | theirs.hosts
    for (label, mine), (_, other) in zip(ours.steps, theirs.steps, strict=False):
        a = _sorted_log([normalise(ours.masked(x), hosts) for x in mine])
        b = _sorted_log([normalise(theirs.masked(x), hosts) for x in other])
        for n in range(max(len(a), len(b))):
            left = a[n] if n < len(a) else "<nothing>"
            right = b[n] if n < len(b) else "<nothing>"
            if left != right:
                return Comparison(
                    scenario=scenario, verdict="differs", step=label, line=n + 1,
                    ours=left, theirs=right,
                )  # fmt: skip
    for stopped in (theirs.stopped, ours.stopped):
        if stopped is not None:
            verdict: Verdict = "not comparable" if "not comparable" in stopped else "error"
            return Comparison(scenario=scenario, verdict=verdict, note=stopped)
    return Comparison(scenario=scenario, verdict="identical")


#: The tag of scenarios that pin virtual dates, pids or file names: only the
#: simulator can meet them, so against live they are not comparable; against a
#: real qmail both sides run at the current second instead (see compare).
VIRTUAL_TIME = "virtual-time"
#: Of those, the ones whose outcome itself depends on what only the simulator
#: pins (a pid's width in a size, the second a file was written): not
#: comparable even against a real qmail at the same instant.
PINNED = "pinned"


def _virtual(side: str | Target) -> bool:
    return (side if isinstance(side, str) else side.name) == "sim"


def _real_start(*sides: str | Target) -> float | None:
    """A real qmail writes today's dates, and a date's width (``7 Dec`` or ``14
    Nov``) shows in sizes (``+OK 1 275``, ``bytes``): against one, every side
    starts its clock at the current second (a scenario's own ``clock_start``
    still wins). None when no side is a real qmail."""
    names = [side if isinstance(side, str) else side.name for side in sides]
    if not any(name.startswith("qmail") for name in names):
        return None
    import time

    return float(int(time.time()))


def compare(
    scenario: Scenario,
    reference: str | Target,
    ours: str | Target = "sim",
    *,
    reference_patches: Collection[str] = (),
) -> Comparison:
    """``reference_patches``: the patches a ``qmail:DIR`` reference was built with
    (harness.targets.qmail.QmailTarget.built_patches)."""
    import time

    started = time.monotonic()
    start = _real_start(ours, reference)
    if PINNED in scenario.tags and not all(_virtual(s) for s in (ours, reference)):
        return Comparison(
            scenario=scenario,
            verdict="not comparable",
            note=f"tagged {PINNED}: it pins the simulator's pids, file sizes, "
            "whole-second clock or connection timeouts, which a real system does not repeat",
        )
    if VIRTUAL_TIME in scenario.tags and start is not None:
        # against a real qmail both sides run at the current second: what the
        # scenario pins to its own instant fails alike on both, and is compared
        import dataclasses

        scenario = dataclasses.replace(scenario, clock_start=None)
    elif VIRTUAL_TIME in scenario.tags and not all(_virtual(s) for s in (ours, reference)):
        return Comparison(
            scenario=scenario,
            verdict="not comparable",
            note=f"tagged {VIRTUAL_TIME}: it pins the simulator's clock, pids or file names",
        )
    records = []
    for side in (ours, reference):
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=default_workroot()))
        try:
            target = make_target(side) if isinstance(side, str) else side
            if side is reference and reference_patches:
                if not hasattr(target, "built_patches"):
                    raise ValueError(f"{target.name}: only a qmail:DIR reference is built")
                setattr(target, "built_patches", frozenset(reference_patches))  # noqa: B010
            if start is not None and target.clock_start is None:
                target.clock_start = start
            records.append(play(scenario, target, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    result = first_difference(records[0], records[1], scenario)
    result.seconds = time.monotonic() - started
    return result


__all__ = [
    "Comparison",
    "NotComparable",
    "Record",
    "Recorder",
    "bounce_in_order",
    "compare",
    "digest",
    "first_difference",
    "normalise",
    "play",
]
