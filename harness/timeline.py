"""What happened to each message, rebuilt from qmail-send's log (qmail-log(5)).

:func:`build` is a pure function over ``(seconds since the start, line)``
pairs. It reads the lines qmail-send writes (qmail-send.c, qsutil.c):

==========================================================  =====================
``new msg N``                                               a message is queued
``info msg N: bytes B from <S> qp Q uid U``                 its size and sender
``starting delivery D: msg N to local|remote R``            an attempt begins
``delivery D: success|deferral|failure: REPORT``            ... and its result
``delivery D: report mangled, will defer``                  ... a garbled result
``bounce msg N qp Q``                                       a bounce was queued
``end msg N``                                               the message is gone
``triple bounce: discarding bounce/N``                      a bounce thrown away
==========================================================  =====================

and ignores every other line (``status:``, warnings, alerts). A delivery
number names one attempt; the result carries the letter qmail-lspawn or
qmail-rspawn reported (K, Z or D; ``?`` for a mangled report, which qmail-send
treats as a deferral). A bounce is linked to the message it became: qmail-send
logs ``bounce msg N qp Q`` and qmail-queue's pid Q reappears in the new
message's ``info`` line, from ``<>`` (a double bounce: ``<#@[]>``). A local
delivery that forwarded reports ``did F+W+P`` and then ``qp Q``
(qmail-local.c), which links it to its copy the same way.

Message numbers are inode numbers, so one can come back for a later message:
``new msg N`` always opens a new :class:`Message`. Lines for a message the log
never showed queued (qmail-send restarted over a full queue) open one too,
with ``queued`` left ``None``.

:func:`readable` undoes ``logsafe()`` as far as it can for a person reading
(``_`` back to a space, ``/`` back to a line break), and :func:`as_text` lays
a timeline out as lines like ``+6m41s  deferral  remote bob@far.example ...``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from harness.scenario.values import format_duration
from server.send.schedule import nextretry

Letter = Literal["K", "Z", "D", "?"]
Channel = Literal["local", "remote"]

#: qmail-send's word for each report letter (qmail-send.c del_dochan).
WORDS: dict[Letter, str] = {"K": "success", "Z": "deferral", "D": "failure", "?": "mangled"}
LETTERS: dict[str, Letter] = {word: letter for letter, word in WORDS.items()}

_NEW = re.compile(r"new msg (\d+)")
_INFO = re.compile(r"info msg (\d+): bytes (\d+) from <(.*)> qp (\d+) uid (\d+)")
START_LINE = re.compile(r"starting delivery (\d+): msg (\d+) to (local|remote) (.*)")
RESULT_LINE = re.compile(r"delivery (\d+): (success|deferral|failure): (.*)")
_MANGLED = re.compile(r"delivery (\d+): report mangled, will defer")
_BOUNCE = re.compile(r"bounce msg (\d+) qp (\d+)")
_END = re.compile(r"end msg (\d+)")
_TRIPLE = re.compile(r"triple bounce: discarding bounce/(\d+)")


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One delivery to one recipient: qmail-send's delivery number ``delivery``."""

    delivery: int
    channel: Channel
    recipient: str  # as logged, i.e. logsafe'd
    try_number: int  # 1 for the first attempt at this recipient of this message
    started: float
    finished: float | None = None  # None: the log ends before the result
    letter: Letter | None = None
    report: str = ""  # as logged, i.e. logsafe'd
    #: index in Timeline.messages of the copy a .qmail forward queued (qmail-local
    #: reports "did F+W+P" and then "qp Q", Q being that qmail-queue's pid)
    forwarded_as: int | None = None

    @property
    def result(self) -> str:
        return WORDS[self.letter] if self.letter else "pending"


@dataclass(frozen=True, kw_only=True)
class Bounce:
    """``bounce msg N qp Q``: the failure notice (or double bounce) qmail-send queued."""

    time: float
    qp: int
    message: int | None = None  # index in Timeline.messages of the bounce itself


@dataclass(frozen=True, kw_only=True)
class Message:
    id: int
    queued: float | None = None
    sender: str | None = None  # as logged; "" is the null sender (a bounce)
    size: int | None = None
    qp: int | None = None
    uid: int | None = None
    attempts: tuple[Attempt, ...] = ()
    bounces: tuple[Bounce, ...] = ()
    bounce_of: int | None = None  # index in Timeline.messages of the bounced message
    forward_of: int | None = None  # ... of the message a .qmail forward made this from
    triple_bounced: float | None = None
    ended: float | None = None

    def recipients(self) -> list[tuple[Channel, str]]:
        """Each (channel, recipient) once, in the order of their first attempt."""
        return list(dict.fromkeys((a.channel, a.recipient) for a in self.attempts))


@dataclass(frozen=True, kw_only=True)
class Timeline:
    messages: tuple[Message, ...] = ()
    span: float = 0.0  # the last time any line was logged


@dataclass
class _Builder:
    """Folds lines into drafts; ``messages`` is replaced, never mutated in place."""

    messages: list[Message] = field(default_factory=list)
    current: dict[int, int] = field(default_factory=dict)  # msg id -> index
    running: dict[int, tuple[int, int]] = field(default_factory=dict)  # delivery -> (msg, i)
    by_qp: dict[int, int] = field(default_factory=dict)  # qp of an info line -> index
    #: qp -> ("bounce" or "forward", msg index, index of the bounce or attempt): a
    #: message queued by that qmail-queue, not logged yet
    wanted: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    span: float = 0.0

    def message(self, msgid: int) -> int:
        if msgid not in self.current:
            self.current[msgid] = len(self.messages)
            self.messages.append(Message(id=msgid))
        return self.current[msgid]

    def update(self, index: int, **changes: object) -> None:
        self.messages[index] = replace(self.messages[index], **changes)  # type: ignore[arg-type]

    def feed(self, t: float, line: str) -> None:
        self.span = max(self.span, t)
        line = line.rstrip("\n")
        for pattern, handler in _HANDLERS:
            if m := pattern.fullmatch(line):
                handler(self, t, m)
                return

    def new(self, t: float, m: re.Match[str]) -> None:
        self.current.pop(int(m[1]), None)
        self.update(self.message(int(m[1])), queued=t)

    def info(self, t: float, m: re.Match[str]) -> None:
        index = self.message(int(m[1]))
        qp = int(m[4])
        self.update(index, size=int(m[2]), sender=m[3], qp=qp, uid=int(m[5]))
        link = self.wanted.get(qp)
        if link is not None and link[1] != index and _fits(link[0], self.messages[index]):
            del self.wanted[qp]
            self.link(*link, index)
        else:
            self.by_qp[qp] = index

    def start(self, t: float, m: re.Match[str]) -> None:
        index = self.message(int(m[2]))
        channel: Channel = "local" if m[3] == "local" else "remote"
        before = [
            a for a in self.messages[index].attempts if (a.channel, a.recipient) == (channel, m[4])
        ]
        attempt = Attempt(
            delivery=int(m[1]),
            channel=channel,
            recipient=m[4],
            try_number=len(before) + 1,
            started=t,
        )
        self.running[attempt.delivery] = (index, len(self.messages[index].attempts))
        self.update(index, attempts=(*self.messages[index].attempts, attempt))

    def finish(self, t: float, delivery: int, letter: Letter, report: str) -> None:
        if delivery not in self.running:
            return  # its start is before the log began: nothing to attach it to
        index, i = self.running.pop(delivery)
        attempts = list(self.messages[index].attempts)
        attempts[i] = replace(attempts[i], finished=t, letter=letter, report=report)
        self.update(index, attempts=tuple(attempts))
        if letter == "K" and (fwd := _FORWARD_QP.search(report)):
            self.want(int(fwd[1]), ("forward", index, i))

    def result(self, t: float, m: re.Match[str]) -> None:
        self.finish(t, int(m[1]), LETTERS[m[2]], m[3])

    def mangled(self, t: float, m: re.Match[str]) -> None:
        self.finish(t, int(m[1]), "?", "")

    def bounce(self, t: float, m: re.Match[str]) -> None:
        index, qp = self.message(int(m[1])), int(m[2])
        bounces = self.messages[index].bounces
        self.update(index, bounces=(*bounces, Bounce(time=t, qp=qp)))
        self.want(qp, ("bounce", index, len(bounces)))

    def want(self, qp: int, link: tuple[str, int, int]) -> None:
        """Link now if the message queued by pid ``qp`` was seen, else when it is."""
        queued = self.by_qp.get(qp)
        if queued is not None and queued != link[1] and _fits(link[0], self.messages[queued]):
            del self.by_qp[qp]
            self.link(*link, queued)
        else:
            self.wanted[qp] = link

    def link(self, kind: str, index: int, i: int, new: int) -> None:
        if kind == "bounce":
            bounces = list(self.messages[index].bounces)
            bounces[i] = replace(bounces[i], message=new)
            self.update(index, bounces=tuple(bounces))
            self.update(new, bounce_of=index)
        else:
            attempts = list(self.messages[index].attempts)
            attempts[i] = replace(attempts[i], forwarded_as=new)
            self.update(index, attempts=tuple(attempts))
            self.update(new, forward_of=index)

    def end(self, t: float, m: re.Match[str]) -> None:
        self.update(self.message(int(m[1])), ended=t)
        del self.current[int(m[1])]

    def triple(self, t: float, m: re.Match[str]) -> None:
        self.update(self.message(int(m[1])), triple_bounced=t)


#: qmail-local's last report line after a forward: "qp Q" (qmail-local.c count_print)
_FORWARD_QP = re.compile(r"(?:^|/)qp_(\d+)(?:/|$)")
#: qmail-send queues a bounce from <> and a double bounce from <#@[]> (injectbounce)
BOUNCE_SENDERS = ("", "#@[]")


def _fits(kind: str, msg: Message) -> bool:
    """A qp names a bounce only if it was queued from a bounce sender (pids are reused)."""
    return kind != "bounce" or msg.sender in BOUNCE_SENDERS


_HANDLERS = (
    (_NEW, _Builder.new),
    (_INFO, _Builder.info),
    (START_LINE, _Builder.start),
    (RESULT_LINE, _Builder.result),
    (_MANGLED, _Builder.mangled),
    (_BOUNCE, _Builder.bounce),
    (_END, _Builder.end),
    (_TRIPLE, _Builder.triple),
)


def build(timed_log: Iterable[tuple[float, str]], *, until: float = 0.0) -> Timeline:
    """The timeline of every message in ``timed_log`` (times never go backwards).

    ``until`` is when the story ends if that is later than the last line (a
    scenario that advanced its clock past the last thing qmail-send logged).
    """
    builder = _Builder(span=until)
    for t, line in timed_log:
        builder.feed(t, line)
    return Timeline(messages=tuple(builder.messages), span=builder.span)


# -- reading it ------------------------------------------------------------------

#: A URL inside a logged report: its "/"s are not line breaks. A "/" before an
#: upper-case letter, a reply code or the end is taken as one (qmail-remote's
#: report lines start "Remote host said:", "451 ...", "Giving up ...").
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/_]+(?:/(?![A-Z]|\d{3}[_-]|$)[^/_]*)*")


def readable(logged: str) -> tuple[str, ...]:
    """``logsafe()`` undone for reading: the report's lines, spaces back.

    qsutil.c logsafe() turns a newline into ``/`` and a space, ``%`` or any
    unprintable byte into ``_``; a real ``_`` or ``/`` looks the same, so this
    is a best reading (``/`` inside a URL stays), not an inverse.
    """
    urls = [(m.start(), m.end()) for m in _URL.finditer(logged)]
    out, pos = [], 0
    for start, stop in [*urls, (len(logged), len(logged))]:
        out.append(logged[pos:start].replace("/", "\n"))
        out.append(logged[start:stop])
        pos = stop
    lines = "".join(out).replace("_", " ").split("\n")
    if lines[-1] == "":
        lines.pop()
    return tuple(lines)


def when(t: float) -> str:
    """``+0s``, ``+6m40s``, ``+2d1h``: seconds since the start, as qmail counts them."""
    return "+" + format_duration(max(0, int(t)))


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One line (and its continuation lines) of a message's story, for text and HTML."""

    time: float
    #: queued, success, deferral, failure, mangled, pending, bounce, discarded, end,
    #: waiting (still queued when the log ends), ... (folded by --brief)
    kind: str
    head: str  # after the kind word: who, which try, ...
    lines: tuple[str, ...] = ()  # the report, readable
    attempt: Attempt | None = None


def next_retry(msg: Message, attempt: Attempt) -> float | None:
    """When qmail-send will try a deferred recipient again (qmail-send.c nextretry()).

    The schedule counts from the message's birth, which is when it was queued;
    it runs from the time the job was opened, i.e. when this attempt started.
    """
    if msg.queued is None or attempt.letter not in ("Z", "?"):
        return None
    return float(nextretry(int(msg.queued), int(attempt.started), attempt.channel))


def _attempt_entry(msg: Message, a: Attempt) -> Entry:
    head = f"{a.channel} {a.recipient}, try {a.try_number}"
    if a.finished is None:
        return Entry(time=a.started, kind="pending", head=head + ": no result logged", attempt=a)
    if a.finished - a.started >= 1:
        head += f", took {format_duration(a.finished - a.started)}"
    retry = next_retry(msg, a)
    if retry is not None:
        head += f", next try {when(retry)}"
    lines = readable(a.report) if a.letter != "?" else ("report mangled, will defer",)
    return Entry(time=a.finished, kind=a.result, head=head, lines=lines, attempt=a)


def _collapse(entries: list[Entry], *, name_lane: bool) -> list[Entry]:
    """Runs of three or more same results for one recipient: keep the first and last.

    ``name_lane``: say whose run was folded (the message has several recipients).
    """
    runs: dict[tuple[str, str], list[int]] = {}
    hidden: dict[int, int] = {}  # index -> index of the run's first hidden entry
    for i, e in enumerate(entries):
        if e.attempt is None:
            continue
        lane = (e.attempt.channel, e.attempt.recipient)
        run = runs.setdefault(lane, [])
        if run and (entries[run[-1]].kind, entries[run[-1]].lines) != (e.kind, e.lines):
            run.clear()
        run.append(i)
        if len(run) >= 3:
            hidden[run[-2]] = run[1]
    out: list[Entry] = []
    for i, e in enumerate(entries):
        if i not in hidden:
            out.append(e)
        elif hidden[i] == i:
            run = [j for j, first in hidden.items() if first == i]
            whose = f" for {e.attempt.channel} {e.attempt.recipient}" if e.attempt else ""
            head = f"{len(run)} more like this{whose if name_lane else ''}"
            head += f", to {when(entries[max(run)].time)}"
            out.append(Entry(time=e.time, kind="...", head=head))
    return out


def _waiting(msg: Message, span: float) -> Entry:
    """The log ends with the message still queued: say when it is next due, if known."""
    last = {(a.channel, a.recipient): a for a in msg.attempts}
    due = [r for a in last.values() if (r := next_retry(msg, a)) is not None]
    head = "still in the queue" + (f", next try {when(min(due))}" if due else "")
    return Entry(time=span, kind="waiting", head=head)


def entries(timeline: Timeline, msg: Message, *, brief: bool = False) -> list[Entry]:
    """A message's story in time order (log order among equal times)."""
    rows: list[tuple[float, int, Entry]] = []
    if msg.queued is not None:
        head = ""
        if msg.bounce_of is not None:
            head = f"bounce of msg {timeline.messages[msg.bounce_of].id}"
        elif msg.forward_of is not None:
            head = f"forwarded from msg {timeline.messages[msg.forward_of].id}"
        rows.append((msg.queued, 0, Entry(time=msg.queued, kind="queued", head=head)))
    for a in msg.attempts:
        e = _attempt_entry(msg, a)
        if a.forwarded_as is not None:
            forwarded = f", forwarded as msg {timeline.messages[a.forwarded_as].id}"
            e = replace(e, head=e.head + forwarded)
        rows.append((e.time, 1, e))
    for b in msg.bounces:
        head = f"qp {b.qp}"
        if b.message is not None:
            head = f"queued as msg {timeline.messages[b.message].id} ({head})"
        rows.append((b.time, 2, Entry(time=b.time, kind="bounce", head=head)))
    if msg.triple_bounced is not None:
        t = msg.triple_bounced
        rows.append((t, 3, Entry(time=t, kind="discarded", head="triple bounce")))
    if msg.ended is not None:
        head = "" if msg.queued is None else f"after {format_duration(msg.ended - msg.queued)}"
        rows.append((msg.ended, 4, Entry(time=msg.ended, kind="end", head=head)))
    if msg.ended is None:
        rows.append((timeline.span, 5, _waiting(msg, timeline.span)))
    ordered = [e for _, _, e in sorted(rows, key=lambda r: (r[0], r[1]))]
    return _collapse(ordered, name_lane=len(msg.recipients()) > 1) if brief else ordered


def title(msg: Message) -> str:
    """``msg 707993 from <alice@example.org>, 201 bytes``."""
    sender = "<?>" if msg.sender is None else f"<{msg.sender}>"
    size = "" if msg.size is None else f", {msg.size} bytes"
    return f"msg {msg.id} from {sender}{size}"


def as_text(timeline: Timeline, *, brief: bool = False) -> list[str]:
    """Each message: a title line, then one line per event, report lines below."""
    out: list[str] = []
    for msg in timeline.messages:
        out.append(title(msg))
        for e in entries(timeline, msg, brief=brief):
            head = f"{e.head}:" if e.lines else e.head
            first = f"{when(e.time):>13}  {e.kind:9} {head}".rstrip()
            out.append(first + (f" {e.lines[0]}" if e.lines else ""))
            out.extend(f"{'':26}{line}".rstrip() for line in e.lines[1:])
        out.append("")
    return out or ["(qmail-send logged no messages)"]
