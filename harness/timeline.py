"""A timeline per message, read back from qmail-send's log lines (qmail-log(5)).

``new msg N`` opens a message, ``info msg N: bytes B from <S> …`` names its
sender, ``starting delivery D: msg N to local|remote R`` starts an attempt
whose result is the later ``delivery D: success|deferral|failure: TEXT``,
``bounce msg N`` and ``end msg N`` close it. Each line comes with the virtual
time it was logged at.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.scenario.values import format_duration

_NEW = re.compile(r"^new msg (\d+)$")
_INFO = re.compile(r"^info msg (\d+): bytes (\d+) from <(.*)> qp \d+")
_START = re.compile(r"^starting delivery (\d+): msg (\d+) to (local|remote) (.*)$")
_RESULT = re.compile(r"^delivery (\d+): (success|deferral|failure): (.*)$")
_BOUNCE = re.compile(r"^bounce msg (\d+) ")
_END = re.compile(r"^end msg (\d+)$")


@dataclass
class Event:
    time: float
    kind: str  # queued, success, deferral, failure, bounce, done
    text: str = ""


@dataclass
class MessageLine:
    id: str
    sender: str = ""
    size: str = ""
    events: list[Event] = field(default_factory=list)


def build(timed_log: Iterable[tuple[float, str]]) -> list[MessageLine]:
    messages: dict[str, MessageLine] = {}
    deliveries: dict[str, tuple[str, str]] = {}  # delivery number -> (msg, "chan rcpt")
    for t, line in timed_log:
        if m := _NEW.match(line):
            messages[m[1]] = MessageLine(id=m[1], events=[Event(t, "queued")])
        elif m := _INFO.match(line):
            msg = messages.setdefault(m[1], MessageLine(id=m[1]))
            msg.size, msg.sender = m[2], m[3]
        elif m := _START.match(line):
            deliveries[m[1]] = (m[2], f"{m[3]} {m[4]}")
        elif (m := _RESULT.match(line)) and m[1] in deliveries:
            msgid, who = deliveries.pop(m[1])
            messages.setdefault(msgid, MessageLine(id=msgid)).events.append(
                Event(t, m[2], f"{who}: {m[3]}")
            )
        elif m := _BOUNCE.match(line):
            messages.setdefault(m[1], MessageLine(id=m[1])).events.append(Event(t, "bounce"))
        elif m := _END.match(line):
            messages.setdefault(m[1], MessageLine(id=m[1])).events.append(Event(t, "done"))
    return list(messages.values())


def _when(t: float) -> str:
    return "+" + format_duration(t) if t >= 1 else "+0s"


def as_text(messages: list[MessageLine]) -> list[str]:
    out = []
    for msg in messages:
        out.append(f"msg {msg.id} from <{msg.sender}>, {msg.size or '?'} bytes")
        for e in msg.events:
            out.append(f"  {_when(e.time):>12}  {e.kind:9} {e.text}".rstrip())
        out.append("")
    return out or ["(qmail-send logged no messages)"]


_COLOURS = {
    "queued": "#3465a4",
    "success": "#4e9a06",
    "deferral": "#f57900",
    "failure": "#cc0000",
    "bounce": "#75507b",
    "done": "#555753",
}


def as_html(title: str, messages: list[MessageLine]) -> str:
    """One SVG strip per message, time running left to right, a dot per event."""
    end = max((e.time for m in messages for e in m.events), default=0.0) or 1.0
    width, rows = 900, []
    for msg in messages:
        dots = []
        for e in msg.events:
            x = 20 + (width - 40) * e.time / end
            tip = html.escape(f"{_when(e.time)} {e.kind} {e.text}")
            dots.append(
                f'<circle cx="{x:.1f}" cy="20" r="6" fill="{_COLOURS[e.kind]}">'
                f"<title>{tip}</title></circle>"
            )
        rows.append(
            f"<h2>msg {html.escape(msg.id)} from &lt;{html.escape(msg.sender)}&gt;</h2>"
            f'<svg width="{width}" height="40"><line x1="20" y1="20" x2="{width - 20}" y2="20"'
            f' stroke="#ccc"/>{"".join(dots)}</svg><pre>'
            + html.escape("\n".join(as_text([msg])[1:]))
            + "</pre>"
        )
    legend = " ".join(f'<span style="color:{c}">&#9679; {k}</span>' for k, c in _COLOURS.items())
    return (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{legend} — span {_when(end)}</p>" + "".join(rows) + "\n"
    )
