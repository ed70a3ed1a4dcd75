"""The assertions of an ``expect`` step, against a target's :class:`Observation`.

Every check that fails adds a line to the failure, so one report shows all
that is wrong at that point: the expected values on the left, what was there
on the right. Mailbox checks (``headers``, ``body_contains``, ``filename_re``,
``from_line``) pass when at least one message matches all of them; ``count``
counts every message; a failed one names, per message, the checks it fails.
``log`` lines must appear in order (each a substring, or ``~ regex``);
``log_unordered`` lines each match a line of their own, in any order;
``dns_queries.seen`` in order, as ``name [TYPE] [udp|tcp] [@server]``
patterns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.mailboxes import Delivered, read_maildir, read_mbox
from harness.outcome import StepFailure
from harness.queueview import read_queue
from harness.scenario import model as m
from harness.scenario.values import Match, format_duration
from harness.targets.base import Observation

Problems = list[tuple[str, str]]  # (expected, actual)


def check(step: m.ExpectStep, obs: Observation) -> None:
    problems: Problems = []
    if step.queue is not None:
        _queue(step.queue, obs, problems)
    for key, want in step.maildir.items():
        _mailbox(f"maildir {key}", want, read_maildir(_maildir_path(key, obs)), problems)
    for key, want in step.mbox.items():
        _mailbox(f"mbox {key}", want, read_mbox(_mbox_path(key, obs)), problems)
    if step.bounces is not None:
        _bounces(step.bounces, obs, problems)
    _in_order("log", step.log, list(obs.log), lambda w, a: w.search(a), problems)
    _any_order(step.log_unordered, list(obs.log), problems)
    for absent in step.log_absent:
        hits = [line for line in obs.log if absent.search(line)]
        if hits:
            problems.append((f"log: no line with {absent}", f"found: {hits[0]}"))
    if step.dns_queries is not None:
        _dns(step.dns_queries, obs, problems)
    for ip, peer in step.peers.items():
        _peer(ip, peer, obs, problems)
    for rel, fexp in step.files.items():
        _file(rel, fexp, obs, problems)
    if problems:
        first = problems[0]
        raise StepFailure(
            f"{len(problems)} expectation(s) not met; first: {first[0]} — {first[1]}",
            expected=[p[0] for p in problems],
            actual=[p[1] for p in problems],
            transcript=_context(problems, obs),
        )


def _context(problems: Problems, obs: Observation) -> list[str]:
    """What a reader needs next to a failed check: the whole log, the DNS queries."""
    out: list[str] = []
    if any(p[0].startswith("log") for p in problems):
        out += ["qmail-send log so far:", *(f"  {line}" for line in obs.log)]
    if any(p[0].startswith(("dns", "no dns")) for p in problems):  # dns_queries checks
        out += ["DNS queries so far:", *(f"  {q}" for q in obs.dns_queries)]
    return out


def _queue(want: m.QueueExpect, obs: Observation, problems: Problems) -> None:
    queued = read_queue(obs.home)
    if want.messages is not None and len(queued) != want.messages:
        ids = ", ".join(str(q.id) for q in queued) or "none"
        problems.append(
            (f"queue: {want.messages} message(s)", f"queue: {len(queued)} message(s) (ids {ids})")
        )
    states: dict[str, str] = {}
    for msg in queued:
        states.update(msg.recipients)
    for addr, state in want.recipients.items():
        got = states.get(addr, "absent")
        if got != state:
            problems.append((f"queue: {addr} {state}", f"queue: {addr} {got}"))
    if want.next_retry is not None:
        wanted = None if want.next_retry == "none" else float(want.next_retry)
        got_retry = obs.retry()
        same = (wanted is None and got_retry is None) or (
            wanted is not None and got_retry is not None and abs(wanted - got_retry) < 0.5
        )
        if not same:
            problems.append(
                (
                    f"queue: next retry at {_when(wanted)}",
                    f"queue: next retry at {_when(got_retry)}",
                )
            )


def _when(t: float | None) -> str:
    return "none" if t is None else f"+{t:g}s ({format_duration(t)})"


def _maildir_path(key: str, obs: Observation) -> Path:
    if key in obs.user_homes:
        return obs.user_homes[key] / "Maildir"
    if key == "alias":
        return obs.home / "alias" / "Maildir"
    return obs.workdir / key


def _mbox_path(key: str, obs: Observation) -> Path:
    mboxes = obs.extra.get("mboxes", {})
    if isinstance(mboxes, dict) and key in mboxes:
        path: Path = mboxes[key]
        return path
    return obs.workdir / key


def _summary(d: Delivered) -> str:
    h = d.headers
    where = f"{d.filename} ({d.from_line})" if d.from_line else d.filename  # an mbox's From_
    return (
        f"{where}: From {h.get('From', '-')} To {h.get('To', '-')} Subject {h.get('Subject', '-')}"
    )


def _failed_checks(want: m.MailboxExpect, d: Delivered) -> list[str]:
    """The checks of ``want`` that message ``d`` fails, as the report names them."""
    failed = []
    headers = d.headers
    for name, match in want.headers.items():
        values = headers.get_all(name) or []
        if not any(match.search(v) if match.regex else v.strip() == match.text for v in values):
            failed.append(f"{name}: {match}")
    text = d.raw.decode("utf-8", "replace")
    failed += [f"body contains {t!r}" for t in want.body_contains if t not in text]
    if want.filename_re and not re.search(want.filename_re, d.filename):
        failed.append(f"file name ~ {want.filename_re}")
    if want.from_line is not None and not want.from_line.search(d.from_line):
        failed.append(f"From line {want.from_line}")
    return failed


def _matches(want: m.MailboxExpect, d: Delivered) -> bool:
    return not _failed_checks(want, d)


def _mailbox(what: str, want: m.MailboxExpect, got: list[Delivered], problems: Problems) -> None:
    if want.count is not None and len(got) != want.count:
        problems.append((f"{what}: {want.count} message(s)", f"{what}: {len(got)} message(s)"))
    needs_match = want.headers or want.body_contains or want.filename_re or want.from_line
    if needs_match and not any(_matches(want, d) for d in got):
        checks = [f"{k}: {v}" for k, v in want.headers.items()]
        checks += [f"body contains {t!r}" for t in want.body_contains]
        if want.filename_re:
            checks.append(f"file name ~ {want.filename_re}")
        if want.from_line:
            checks.append(f"From line {want.from_line}")
        seen = "; ".join(f"{_summary(d)} [fails {', '.join(_failed_checks(want, d))}]" for d in got)
        seen = seen or "no messages"
        problems.append((f"{what}: a message with " + ", ".join(checks), f"{what}: {seen}"))


def _bounces(want: m.BouncesExpect, obs: Observation, problems: Problems) -> None:
    found: list[tuple[str, str]] = []  # (to, text)
    boxes = [obs.user_homes[u] / "Maildir" for u in obs.user_homes]
    boxes.append(obs.home / "alias" / "Maildir")
    for box in boxes:
        for d in read_maildir(box):
            if (d.headers.get("Return-Path") or "").strip() == "<>":
                found.append((d.headers.get("To", ""), d.raw.decode("utf-8", "replace")))
    for sessions in obs.peer_sessions.values():
        for s in sessions:
            if s.delivered and s.mail_from == "":
                found.append((" ".join(s.rcpt), (s.data or b"").decode("utf-8", "replace")))
    if want.to is not None:
        found = [f for f in found if want.to in f[0]]
    if want.count is not None and len(found) != want.count:
        problems.append(
            (
                f"bounces: {want.count}" + (f" to {want.to}" if want.to else ""),
                f"bounces: {len(found)}",
            )
        )
    for text in want.body_contains:
        if not any(text in body for _, body in found):
            problems.append((f"a bounce containing {text!r}", f"{len(found)} bounce(s) without it"))


def _in_order(
    what: str,
    wanted: Sequence[Match],
    actual: list[str],
    matches: Callable[[Match, str], bool],
    problems: Problems,
) -> None:
    pos = 0
    for want in wanted:
        while pos < len(actual) and not matches(want, actual[pos]):
            pos += 1
        if pos == len(actual):
            problems.append(
                (
                    f"{what}: {want} (in order)",
                    f"{what}: no such line after the previous match (see below)",
                )
            )
            return
        pos += 1


def _any_order(wanted: Sequence[Match], actual: list[str], problems: Problems) -> None:
    """``log_unordered``: each line matches a log line of its own, in any order
    (concurrent deliveries on a live or real qmail finish in any order)."""
    free = list(actual)
    for want in wanted:
        hit = next((line for line in free if want.search(line)), None)
        if hit is None:
            problems.append(
                (f"log: {want} (any order)", "log: no such line left unmatched (see below)")
            )
            continue
        free.remove(hit)


def _dns(want: m.DnsQueryExpect, obs: Observation, problems: Problems) -> None:
    queries = list(obs.dns_queries)
    pos = 0
    for pattern in want.seen:
        while pos < len(queries) and not queries[pos].matches(pattern):
            pos += 1
        if pos == len(queries):
            problems.append(
                (
                    f"dns query {pattern} (in order)",
                    "no such query after the previous match (see below)",
                )
            )
            break
        pos += 1
    for pattern in want.not_seen:
        if any(q.matches(pattern) for q in queries):
            hit = next(q for q in queries if q.matches(pattern))
            problems.append((f"no dns query {pattern}", f"dns query {hit}"))
    if want.count is not None and len(queries) != want.count:
        problems.append((f"dns: {want.count} queries", f"dns: {len(queries)} queries"))


def _peer(ip: str, want: m.PeerExpect, obs: Observation, problems: Problems) -> None:
    sessions = list(obs.peer_sessions.get(ip, []))
    delivered = [s for s in sessions if s.delivered]
    if want.connections is not None and len(sessions) != want.connections:
        problems.append(
            (
                f"peer {ip}: {want.connections} connection(s)",
                f"peer {ip}: {len(sessions)} connection(s)",
            )
        )
    if want.messages is not None and len(delivered) != want.messages:
        problems.append(
            (f"peer {ip}: {want.messages} message(s)", f"peer {ip}: {len(delivered)} message(s)")
        )
    if want.rcpt is not None:
        got = sorted(r for s in sessions for r in s.rcpt)
        if got != sorted(want.rcpt):
            problems.append((f"peer {ip}: rcpt {sorted(want.rcpt)}", f"peer {ip}: rcpt {got}"))
    if want.mail_from is not None and not any(s.mail_from == want.mail_from for s in sessions):
        problems.append(
            (
                f"peer {ip}: MAIL FROM:<{want.mail_from}>",
                f"peer {ip}: {[s.mail_from for s in sessions]}",
            )
        )
    if want.helo is not None and not any(_helo_is(want.helo, s.helo) for s in sessions):
        problems.append(
            (f"peer {ip}: HELO {want.helo}", f"peer {ip}: {[s.helo for s in sessions]}")
        )
    for text in want.data_contains:
        if not any(text.encode() in (s.data or b"") for s in delivered):
            problems.append(
                (
                    f"peer {ip}: data containing {text!r}",
                    f"peer {ip}: {len(delivered)} message(s) without it",
                )
            )


def _helo_is(want: Match, helo: str | None) -> bool:
    """A HELO check: the argument itself, or ``~ regex`` found in it."""
    if helo is None:
        return False
    return want.search(helo) if want.regex else helo == want.text


def _file(rel: str, want: m.FileExpect, obs: Observation, problems: Problems) -> None:
    if rel.startswith("~"):
        user, _, rest = rel[1:].partition("/")
        path = obs.user_homes.get(user, obs.workdir / "homes" / user) / rest
    else:
        path = obs.home / rel
    exists = path.exists()
    if want.exists is not None and exists != want.exists:
        problems.append(
            (
                f"{rel} {'exists' if want.exists else 'absent'}",
                f"{rel} {'exists' if exists else 'absent'}",
            )
        )
    if not (want.contains or want.equals is not None):
        return
    text = path.read_text(errors="replace") if path.is_file() else ""
    for part in want.contains:
        if part not in text:
            problems.append((f"{rel} contains {part!r}", f"{rel}: {text[:200]!r}"))
    if want.equals is not None and text != want.equals:
        problems.append((f"{rel} = {want.equals!r}", f"{rel} = {text[:200]!r}"))
