"""The Python API: a qmail home to test against, from pytest, unittest or a script.

:class:`QmailSim` is a simulator home (harness.targets.sim) on a virtual
clock; :class:`QmailServer` is the same home served live on free loopback
ports (harness.targets.live, outside any network namespace, so the test
process can connect). Both are configured the way a scenario file is (the
configuration is a scenario's top level, checked by the scenario loader),
start on the first action, and read back the same things: the queue, Maildirs
and mboxes (as :class:`email.message.EmailMessage`), bounces, qmail-send's
log, the DNS questions and the fake peers' sessions.

Deliveries happen in :meth:`Home.run` and :meth:`Home.advance`, as in a
scenario's ``run`` and ``advance`` steps, so a test can look at the queue in
between. Use either as a context manager (or call :meth:`Home.close`): the
work directory and every process are gone afterwards.
"""

from __future__ import annotations

import email
import email.policy
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import yaml

from harness.converse import Turn
from harness.fakedns import DnsQuery
from harness.fakepeers import PeerSession
from harness.mailboxes import Delivered, read_maildir, read_mbox
from harness.outcome import Result, StepFailure
from harness.queueview import QueuedMessage, read_queue
from harness.runner import default_workroot, load_all, remove_workdir, run_all
from harness.scenario import Scenario, load_text
from harness.scenario.model import InjectStep, SessionStep, SignalName
from harness.scenario.values import parse_duration
from harness.steps import execute
from harness.steps.session import replay, server_lines
from harness.targets.base import ProgramResult
from harness.targets.live import LiveTarget
from harness.targets.sim import SimTarget

CRLF = b"\r\n"


class ApiError(Exception):
    """The API was used out of order (configuring a started home, reading an unknown user)."""


class StepFailed(AssertionError):
    """A transcript's ``S:`` lines or a scenario's ``expect`` did not hold."""

    def __init__(self, failure: StepFailure) -> None:
        lines = [failure.message, *failure.transcript]
        super().__init__("\n".join(lines))
        self.failure = failure


def as_email(raw: bytes) -> EmailMessage:
    """A message's bytes as an :class:`EmailMessage` (email.policy.default)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def load_scenarios(path: Path | str) -> list[Scenario]:
    """The scenarios of a file (or of every file under a directory)."""
    scenarios, errors = load_all([Path(path)])
    if errors:
        raise ApiError("\n".join(e.message for e in errors))
    return scenarios


def run_scenarios(path: Path | str, *, target: str = "sim") -> list[Result]:
    """Run a scenario file (or directory) as ``qmail-sim run`` does; one Result each."""
    return run_all(load_scenarios(path), target=target)


class Home:
    """What :class:`QmailSim` and :class:`QmailServer` share: configure, act, read back."""

    def __init__(
        self,
        *,
        me: str | None = "example.org",
        patches: Iterable[str] = (),
        controls: Mapping[str, str | Sequence[str] | None] | None = None,
        seed: int = 0,
        workroot: Path | None = None,
        keep: bool = False,
    ) -> None:
        self._spec: dict[str, Any] = {
            "name": type(self).__name__,
            "control": {} if me is None else {"me": me},
            "patches": list(patches),
            "users": {},
            "seed": seed,
        }
        self._workroot = workroot
        self._keep = keep
        self._target: SimTarget | None = None
        self._closed = False
        self.workdir: Path | None = None
        self.controls(controls or {})

    # -- configuring ---------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        if self._target is not None:
            raise ApiError("configure the home before its first action (it has started)")
        return self._spec

    def control(self, name: str, value: str | Sequence[str] | None) -> Self:
        """Set control/NAME (a list is one line each; None removes the file)."""
        return self.controls({name: value})

    def controls(self, files: Mapping[str, str | Sequence[str] | None]) -> Self:
        texts = {
            k: v if v is None or isinstance(v, str) else "\n".join(v) for k, v in files.items()
        }
        if self._target is not None:
            self._target.set_control(texts)  # qmail-send rereads some on signal("hup")
        else:
            self._spec["control"].update(texts)
        return self

    def user(self, name: str, **fields: Any) -> Self:
        """A user, as a scenario's ``users:`` entry: ``dotqmail={"": "./Maildir/"}``,
        ``mbox="Mailbox"``, ``password="pw"``, ``maildir=False``, ``modes={...}``."""
        self._config()["users"][name] = fields
        return self

    def dotqmail(self, user: str, ext: str, text: str) -> Self:
        """USER's ``.qmail{ext}`` (``""`` for .qmail itself, ``"-default"``...)."""
        if self._target is None:
            self._spec["users"].setdefault(user, {}).setdefault("dotqmail", {})[ext] = text
        else:
            path = self._user_home(user) / f".qmail{ext}"
            path.write_text(text if text.endswith("\n") else text + "\n")
        return self

    def assign(self, lines: Sequence[str]) -> Self:
        """users/assign's lines (qmail-users(5)); ``{workdir}`` stands for the work directory."""
        self._config()["assign"] = list(lines)
        return self

    def alias(self, name: str, text: str) -> Self:
        """~alias/.qmail-NAME."""
        self._config().setdefault("aliases", {})[name] = text
        return self

    def dns_zone(self, text: str) -> Self:
        """Zone-file lines the fake DNS answers from (added to what is there)."""
        dns = self._config().setdefault("dns", {})
        dns["zone"] = dns.get("zone", "") + text.rstrip("\n") + "\n"
        return self

    def dns_rule(self, name: str, **rule: Any) -> Self:
        """A DNS rule, as a scenario's ``dns.rules`` entry:
        ``dns_rule("far.example", type="ANY", rcode="SERVFAIL")``."""
        self._config().setdefault("dns", {}).setdefault("rules", []).append({"name": name, **rule})
        return self

    def peer(self, ip: str, **script: Any) -> Self:
        """A fake remote SMTP server at IP (127.x.y.z): ``peer(ip, accept="all")``,
        ``peer(ip, rcpt={"*": "451 busy"})``..., as a scenario's ``peers:``."""
        self._config().setdefault("peers", {})[ip] = script or {"accept": "all"}
        return self

    def setting(self, key: str, value: Any) -> Self:
        """Any other top-level key of a scenario, as its YAML value:
        ``setting("tcprules", "127.:allow,RELAYCLIENT=\"\"\n")``, ``setting("limits", {...})``."""
        self._config()[key] = value
        return self

    def scenario(self) -> Scenario:
        """The configuration so far, as the loader builds it (errors name the key)."""
        text = yaml.safe_dump({**self._spec, "steps": []})
        return load_text(text, f"<{type(self).__name__}>")[0]

    # -- starting and stopping -------------------------------------------------------
    def _new_target(self) -> SimTarget:
        return SimTarget()

    def start(self, scenario: Scenario | None = None) -> Self:
        """Make the home (and, live, start the server); the first action does it too."""
        if self._target is not None or self._closed:
            raise ApiError("the home has already started")
        chosen = scenario or self.scenario()
        workroot = self._workroot or default_workroot()
        self.workdir = Path(tempfile.mkdtemp(prefix="qmail-sim-api-", dir=workroot))
        target = self._new_target()
        try:
            target.start(chosen, self.workdir, chosen.seed)
        except BaseException:
            self._target = target
            self.close()
            raise
        self._target = target
        return self

    @property
    def target(self) -> SimTarget:
        if self._closed:
            raise ApiError("the home is closed")
        if self._target is None:
            self.start()
        assert self._target is not None
        return self._target

    @property
    def home(self) -> Path:
        """The qmail home (``control/``, ``queue/``, ``users/``...)."""
        return self.target.home

    def close(self) -> None:
        """Stop everything and remove the work directory (unless ``keep``)."""
        target, self._target = self._target, None
        self._closed = True
        try:
            if target is not None:
                target.close()
        finally:
            if self.workdir is not None and not self._keep:
                remove_workdir(self.workdir)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- acting ------------------------------------------------------------------------------
    def _session(
        self, kind: str, transcript: str, env: Mapping[str, str | None] | None
    ) -> list[str]:
        step = self._step({kind: {"transcript": transcript, "env": dict(env or {})}})
        try:
            return replay(step, self.target)
        except StepFailure as exc:
            raise StepFailed(exc) from None

    def _step(self, step: Mapping[str, Any]) -> Any:
        text = yaml.safe_dump({**self._spec, "steps": [dict(step)]})
        return load_text(text, "<api>")[0].steps[0]

    def _execute(self, step: Any) -> None:
        try:
            execute(step, self.target)
        except StepFailure as exc:
            raise StepFailed(exc) from None

    def step(self, kind: str, value: Any) -> Self:
        """Any scenario step, as its YAML value: ``step("smtp", {"transcript": t, "exit": 0})``."""
        self._execute(self._step({kind: value}))
        return self

    def expect(self, **checks: Any) -> Self:
        """A scenario's ``expect`` step (docs/scenarios.md): ``expect(queue={"messages": 0},
        maildir={"alice": {"count": 1}}, log=["delivery 1: success"])``; StepFailed if not."""
        return self.step("expect", checks)

    def smtp(self, transcript: str, env: Mapping[str, str | None] | None = None) -> list[str]:
        """Play a ``C:``/``S:`` transcript to qmail-smtpd (``S:`` lines are checked,
        ``S: ~ regex`` searched); the server's lines. ``env`` as tcpserver's."""
        return self._session("smtp", transcript, env)

    def pop3(self, transcript: str, env: Mapping[str, str | None] | None = None) -> list[str]:
        """Play a transcript to qmail-popup + qmail-pop3d; the server's lines."""
        return self._session("pop3", transcript, env)

    def qmtp(self, transcript: str, env: Mapping[str, str | None] | None = None) -> list[str]:
        """Play ``R:``/``S:`` lines to qmail-qmtpd; its answers, one netstring each."""
        return self._session("qmtp", transcript, env)

    def qmqp(self, transcript: str, env: Mapping[str, str | None] | None = None) -> list[str]:
        """Play ``R:``/``S:`` lines to qmail-qmqpd; its answer, a netstring."""
        return self._session("qmqp", transcript, env)

    def send(
        self,
        sender: str,
        recipients: Iterable[str],
        message: str | bytes | EmailMessage,
        *,
        helo: str = "client.example",
        env: Mapping[str, str | None] | None = None,
    ) -> list[str]:
        """One SMTP transaction, each command waiting for its reply; the server's lines."""
        if isinstance(message, EmailMessage):
            message = message.as_bytes(policy=email.policy.SMTP)
        elif isinstance(message, str):
            message = message.encode("utf-8")
        lines = message.replace(CRLF, b"\n").rstrip(b"\n").split(b"\n")
        data = b"".join((b"." + x if x.startswith(b".") else x) + CRLF for x in lines)
        commands = [f"HELO {helo}", f"MAIL FROM:<{sender}>"]
        commands += [f"RCPT TO:<{r}>" for r in recipients]
        played = [Turn(b"", 1), *(Turn(c.encode() + CRLF, 1) for c in [*commands, "DATA"])]
        played += [Turn(data + b"." + CRLF, 1), Turn(b"QUIT" + CRLF, 1)]
        step = SessionStep(kind="smtp", env=dict(env or {}))
        return server_lines(self.target.session(step, played).stdout)

    def inject(
        self, message: str, *args: str, env: Mapping[str, str | None] | None = None
    ) -> ProgramResult:
        """qmail-inject ARGS with MESSAGE on stdin (``-f``, recipients...)."""
        return self.target.inject(InjectStep(args=args, env=dict(env or {}), message=message))

    def run(self) -> Self:
        """Let qmail-send work until it is idle (nothing due now)."""
        self.target.run_until_idle()
        return self

    def advance(self, duration: float | str) -> Self:
        """Move the clock (seconds, or ``"8d"``, ``"90m"``...), delivering what falls due."""
        seconds = parse_duration(duration) if isinstance(duration, str) else float(duration)
        self.target.advance(seconds)
        return self

    def signal(self, name: SignalName) -> Self:
        """qmail-send's ALRM (retry now), HUP (reread controls) or TERM."""
        self.target.signal(name)
        return self

    def play(self, scenario: Scenario) -> Self:
        """Run a scenario's steps (its ``expect`` steps raise :class:`StepFailed`)."""
        if self._target is None:
            self.start(scenario)
        for step in scenario.steps:
            self._execute(step)
        return self

    # -- reading back ----------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Seconds since the home started, on its clock."""
        return self.target.observe().now

    def next_retry(self) -> float | None:
        """When qmail-send next retries (seconds since the start), or None."""
        return self.target.observe().retry()

    def queue(self) -> list[QueuedMessage]:
        """The messages in queue/, with sender and recipients (as qmail-qread sees them)."""
        return read_queue(self.home)

    def _user_home(self, user: str) -> Path:
        if user == "alias":
            return self.home / "alias"
        try:
            return Path(self.target.user_homes[user])
        except KeyError:
            raise ApiError(f"no user {user!r} (add it with .user({user!r}))") from None

    def maildir(self, user: str, folder: str = "Maildir") -> list[EmailMessage]:
        """The messages in USER's Maildir (new/ and cur/), oldest first."""
        return [as_email(d.raw) for d in self.maildir_files(user, folder)]

    def maildir_files(self, user: str, folder: str = "Maildir") -> list[Delivered]:
        """The same with file names (``new/1700000000.100001.host``)."""
        return read_maildir(self._user_home(user) / folder)

    def mbox(self, user: str, path: str | None = None) -> list[EmailMessage]:
        """The messages of USER's mbox (its ``mbox=`` file, or PATH in the home)."""
        home = self._user_home(user)  # an unknown user is an ApiError
        known = self.target.scenario.users.get(user)
        name = path or (known.mbox if known is not None else None)
        if name is None:
            raise ApiError(f"user {user!r} has no mbox")
        return [as_email(d.raw) for d in read_mbox(home / name)]

    def bounces(self) -> list[EmailMessage]:
        """Bounces delivered locally (``Return-Path: <>``) or sent to a fake peer."""
        seen = self.target.observe()
        found = []
        for box in [
            *(Path(h) / "Maildir" for h in seen.user_homes.values()),
            seen.home / "alias" / "Maildir",
        ]:
            found += [as_email(d.raw) for d in read_maildir(box)]
        out = [m for m in found if (m.get("Return-Path") or "").strip() == "<>"]
        for sessions in seen.peer_sessions.values():
            out += [as_email(s.data or b"") for s in sessions if s.delivered and s.mail_from == ""]
        return out

    def log(self) -> list[str]:
        """qmail-send's log lines so far."""
        return list(self.target.observe().log)

    def dns_queries(self) -> list[DnsQuery]:
        """Every question the fake DNS was asked (name, type, transport, server, time)."""
        return list(self.target.observe().dns_queries)

    def peer_sessions(self, ip: str) -> list[PeerSession]:
        """The connections the fake peer at IP saw, with what each received."""
        return list(self.target.observe().peer_sessions.get(ip, ()))


class QmailSim(Home):
    """A simulator home: in-process, deterministic, on a virtual clock."""


class _LoopbackLive(LiveTarget):
    """The live target on the host's loopback: a namespace would hide its ports."""

    def use_netns(self) -> bool:
        return False


class QmailServer(Home):
    """The home served live: qmail-smtpd and qmail-popup on free loopback ports."""

    def _new_target(self) -> SimTarget:
        return _LoopbackLive()

    def _ports(self) -> dict[str, int]:
        target = cast(LiveTarget, self.target)
        return cast(dict[str, int], target.live.call("ports"))

    @property
    def smtp_address(self) -> tuple[str, int]:
        """(host, port) of qmail-smtpd, for ``smtplib.SMTP(*address)``."""
        return ("127.0.0.1", self._ports()["smtp"])

    @property
    def pop3_address(self) -> tuple[str, int]:
        """(host, port) of qmail-popup, for ``poplib.POP3(*address)``."""
        return ("127.0.0.1", self._ports()["pop3"])


__all__ = [
    "ApiError",
    "Home",
    "QmailServer",
    "QmailSim",
    "StepFailed",
    "as_email",
    "load_scenarios",
    "run_scenarios",
]
