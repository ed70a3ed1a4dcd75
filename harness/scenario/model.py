"""What a scenario is, once loaded: frozen dataclasses, no YAML left.

The loader (loader.py) checks the YAML against the schema (schema.py) and
builds these. Targets and steps read only these classes. Every step keeps the
line it came from, so a failure report can point back into the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from harness.scenario.values import Match, TranscriptLine

SignalName = Literal["alrm", "hup", "term"]
MALFORMED = ("truncated", "pointer_loop", "wrong_id", "other_question")
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")
#: The SMTP stages a fake peer can drop or time out at.
PEER_STAGES = ("connect", "greeting", "helo", "mail", "rcpt", "data", "end", "quit")


@dataclass(frozen=True, kw_only=True)
class MaildirMessage:
    """A message put into a user's Maildir before the steps (harness.maildirseed)."""

    text: str
    name: str | None = None  # the file name's unique part; default DATE.N.seed
    flags: str | None = None  # None: in new/; else in cur/ as NAME:2,FLAGS
    date: float | None = None  # the mtime, epoch seconds; default 1000000000 + N - 1


@dataclass(frozen=True, kw_only=True)
class User:
    name: str
    home: str | None = None  # relative to the scenario's work directory
    dotqmail: Mapping[str, str] = field(default_factory=dict)
    maildir: bool = True
    mbox: str | None = None
    password: str | None = None
    #: path in the home ("." for the home itself) -> permission bits, set after
    #: everything else is made (a read-only mbox, a Maildir/tmp the user
    #: cannot write, a home the user cannot enter)
    modes: Mapping[str, int] = field(default_factory=dict)
    #: messages put into ~/Maildir before the steps run
    messages: tuple[MaildirMessage, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DnsRule:
    name: str
    type: str = "*"
    rcode: str | None = None
    timeout: bool = False
    pad_to: int | None = None
    tc: bool = False
    minimal_any: bool = False
    malformed: str | None = None
    answer: tuple[str, ...] | None = None
    times: int | None = None
    after: float | None = None
    until: float | None = None
    server: str | None = None
    line: int = 0


@dataclass(frozen=True, kw_only=True)
class DnsSpec:
    zone: str = ""
    servers: tuple[str, ...] = ("127.0.0.53",)
    #: What the home's resolv.conf names (default: ``servers``); naming another
    #: address reproduces a broken resolv.conf: every query times out.
    resolv_conf: tuple[str, ...] | None = None
    rules: tuple[DnsRule, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PeerScript:
    """One connection's worth of replies. A reply may hold several lines (``\\n``)."""

    greeting: str = "220 {ip} ESMTP fake"
    helo: str = "250 {ip}"
    ehlo: str = "250-{ip}\n250 PIPELINING"
    mail: str = "250 ok"
    rcpt: Mapping[str, str] = field(default_factory=lambda: {"*": "250 ok"})
    data: str = "354 go ahead"
    end: str = "250 ok {n}"
    quit: str = "221 bye"
    rset: str = "250 ok"
    refuse: bool = False
    timeout: str | None = None
    drop: str | None = None
    #: stage -> seconds the peer waits before answering (virtual time; longer
    #: than the client's timeout is a timeout)
    delay: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PeerSpec:
    ip: str
    script: PeerScript
    attempts: tuple[PeerScript, ...] = ()

    def for_attempt(self, n: int) -> PeerScript:
        """The script for connection ``n`` (0-based): a variant, or the base after them."""
        return self.attempts[n] if n < len(self.attempts) else self.script


@dataclass(frozen=True, kw_only=True)
class Limits:
    virtual: float = 60 * 86400.0  # seconds of virtual time a scenario may span
    wall: float = 30.0  # seconds of real time
    passes: int = 100_000  # queue passes per run/advance step


@dataclass(frozen=True, kw_only=True)
class SessionStep:
    """An ``smtp``, ``pop3``, ``qmtp`` or ``qmqp`` step: an environment and a transcript."""

    kind: Literal["smtp", "pop3", "qmtp", "qmqp"]
    env: Mapping[str, str | None] = field(default_factory=dict)
    transcript: tuple[TranscriptLine, ...] = ()
    transcript_line: int = 0
    exit: int | None = None
    host: str | None = None
    line: int = 0


@dataclass(frozen=True, kw_only=True)
class InjectStep:
    kind: Literal["inject"] = "inject"
    args: tuple[str, ...] = ()
    env: Mapping[str, str | None] = field(default_factory=dict)
    message: str = ""
    exit: int | None = 0
    #: the program's output lines, one for one (text or ``~ regex``); None: not checked
    stdout: tuple[Match, ...] | None = None
    stderr: tuple[Match, ...] | None = None
    line: int = 0


@dataclass(frozen=True, kw_only=True)
class ProgramStep:
    """``run_program``: one of the home's programs (``bin/NAME``), in the work directory."""

    kind: Literal["run_program"] = "run_program"
    args: tuple[str, ...] = ()  # the program's name, then its arguments
    env: Mapping[str, str | None] = field(default_factory=dict)
    stdin: str = ""
    exit: int | None = 0
    stdout: tuple[Match, ...] | None = None
    stderr: tuple[Match, ...] | None = None
    line: int = 0


@dataclass(frozen=True, kw_only=True)
class RunStep:
    kind: Literal["run"] = "run"
    until: str = "idle"
    line: int = 0


@dataclass(frozen=True, kw_only=True)
class AdvanceStep:
    kind: Literal["advance"] = "advance"
    seconds: float = 0.0
    line: int = 0


@dataclass(frozen=True, kw_only=True)
class SignalStep:
    kind: Literal["signal"] = "signal"
    signal: SignalName = "alrm"
    line: int = 0


@dataclass(frozen=True, kw_only=True)
class ControlStep:
    """Rewrite control files mid-scenario (then ``signal: hup`` to reread)."""

    kind: Literal["control"] = "control"
    files: Mapping[str, str | None] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True, kw_only=True)
class QueueExpect:
    messages: int | None = None
    recipients: Mapping[str, str] = field(default_factory=dict)
    next_retry: float | Literal["none"] | None = None


@dataclass(frozen=True, kw_only=True)
class MailboxExpect:
    """For a Maildir or an mbox: how many messages, and one that matches all checks."""

    count: int | None = None
    headers: Mapping[str, Match] = field(default_factory=dict)
    body_contains: tuple[str, ...] = ()
    filename_re: str | None = None
    from_line: Match | None = None


@dataclass(frozen=True, kw_only=True)
class BouncesExpect:
    count: int | None = None
    to: str | None = None
    body_contains: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PeerExpect:
    connections: int | None = None
    messages: int | None = None
    #: recipients the peer accepted, over every session (delivered or not)
    rcpt: tuple[str, ...] | None = None
    #: some session's MAIL FROM (delivered or not)
    mail_from: str | None = None
    #: some session's HELO or EHLO argument (text, or ``~ regex``)
    helo: Match | None = None
    data_contains: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FileExpect:
    exists: bool | None = None
    contains: tuple[str, ...] = ()
    equals: str | None = None


@dataclass(frozen=True, kw_only=True)
class DnsQueryExpect:
    """``name TYPE [udp|tcp] [@server]`` patterns, in order, and/or a count."""

    seen: tuple[str, ...] = ()
    not_seen: tuple[str, ...] = ()
    count: int | None = None


@dataclass(frozen=True, kw_only=True)
class ExpectStep:
    kind: Literal["expect"] = "expect"
    queue: QueueExpect | None = None
    maildir: Mapping[str, MailboxExpect] = field(default_factory=dict)
    mbox: Mapping[str, MailboxExpect] = field(default_factory=dict)
    bounces: BouncesExpect | None = None
    log: tuple[Match, ...] = ()
    log_absent: tuple[Match, ...] = ()
    #: log lines that must each be there, in any order
    log_unordered: tuple[Match, ...] = ()
    dns_queries: DnsQueryExpect | None = None
    peers: Mapping[str, PeerExpect] = field(default_factory=dict)
    files: Mapping[str, FileExpect] = field(default_factory=dict)
    line: int = 0


Step = (
    SessionStep
    | InjectStep
    | RunStep
    | AdvanceStep
    | SignalStep
    | ControlStep
    | ExpectStep
    | ProgramStep
)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    file: str
    line: int
    tags: tuple[str, ...] = ()
    control: Mapping[str, str | None] = field(default_factory=dict)
    patches: tuple[str, ...] = ()
    users: Mapping[str, User] = field(default_factory=dict)
    assign: tuple[str, ...] | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    tcprules: str | None = None
    dns: DnsSpec = field(default_factory=DnsSpec)
    peers: Mapping[str, PeerSpec] = field(default_factory=dict)
    seed: int = 0
    limits: Limits = field(default_factory=Limits)
    steps: tuple[Step, ...] = ()
    xfail: str | None = None
    #: seconds since the epoch the clock starts at, pinned by the scenario
    #: (its expectations hold at that instant only); None: the run's choice
    clock_start: float | None = None
    #: the scenario's own paths (homes, expected files, mailbox keys) may
    #: point outside its work directory (``paths_outside_workdir: true``)
    paths_outside_workdir: bool = False
    #: ``TZ`` for every program of the home (harness.targets.zone); None: unset
    tz: str | None = None
    #: the zone file (a name under /usr/share/zoneinfo) that stands for
    #: /etc/localtime; None: the host's
    localtime: str | None = None

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"
