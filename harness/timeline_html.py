"""Timelines drawn as one self-contained HTML page: inline SVG, no scripts, no assets.

Each scenario gets one SVG. Time runs left to right; each message has a
header row (queued, bounces, end, with a grey bar for its life in the queue)
and under it a lane per recipient with a mark per delivery attempt, coloured
by its result. Every mark has an SVG ``<title>``, so hovering shows the time,
the attempt and the report; a dashed line joins a bounce to the message it
became, and a forwarding delivery to its copy. Below the picture the same
timeline is printed as text.

The time axis is a square-root scale: qmail-send retries a message at
``birth + (sqrt(age) + c)**2`` (qmail-send.c nextretry()), so on this axis a
recipient's retries fall at roughly even steps, and the first seconds are not
squashed into one pixel next to a week of queuelifetime. Marks that would
overlap are nudged right so each stays visible; their titles keep the exact
times.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.timeline import Entry, Message, Timeline, as_text, entries, title, when

WIDTH = 1100
LABEL_WIDTH = 380  # the left column with message titles and recipients
PLOT_LEFT, PLOT_RIGHT = LABEL_WIDTH + 16, WIDTH - 24
ROW = 22  # pixels per header row or lane
AXIS = 34  # room for the time axis above the first row
NUDGE = 11  # the least distance between two marks on one row
LABEL_CHARS = 54  # about what fits in LABEL_WIDTH at 12px (bold: a tenth fewer)

COLOURS = {
    "queued": "#1565c0",
    "success": "#2e7d32",
    "deferral": "#ef6c00",
    "failure": "#c62828",
    "mangled": "#757575",
    "pending": "#ffffff",
    "bounce": "#6a1b9a",
    "discarded": "#4e342e",
    "end": "#212121",
    "waiting": "#9e9e9e",
}
LEGEND = {
    "queued": "queued",
    "success": "delivered (K)",
    "deferral": "deferred, will retry (Z)",
    "failure": "failed for good (D)",
    "mangled": "report mangled (deferred)",
    "pending": "no result logged",
    "bounce": "bounce queued",
    "discarded": "triple bounce discarded",
    "end": "left the queue",
    "waiting": "still queued at the end",
}
#: seconds a tick may mark: round durations from a second to a month
_HOUR, _DAY = 3600, 86400
TICKS = (
    *(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800),
    *(h * _HOUR for h in (1, 2, 3, 6, 12)),
    *(d * _DAY for d in (1, 2, 3, 4, 5, 6, 7, 8, 10, 14, 21, 28)),
)


#: characters XML (and so inline SVG) does not allow; qmail's logsafe() never
#: writes them, but a timeline may come from any text
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    return html.escape(_NOT_XML.sub("\ufffd", text))


@dataclass(frozen=True, kw_only=True)
class Page:
    """One scenario's part of the page."""

    title: str
    status: str  # pass, fail, error, xfail, xpass (harness.outcome)
    timeline: Timeline


@dataclass(frozen=True)
class Scale:
    """Seconds since the start to x, on a square-root scale ending at ``span``."""

    span: float

    def x(self, t: float) -> float:
        share = math.sqrt(max(t, 0.0) / self.span) if self.span > 0 else 0.0
        return PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * min(share, 1.0)


def _mark(kind: str, x: float, y: float, tip: str) -> str:
    colour = COLOURS.get(kind, "#757575")
    tip_el = f"<title>{escape(tip)}</title>"
    if kind == "queued":
        shape = f'<path d="M{x - 5:.1f},{y - 6}l10,6l-10,6z" fill="{colour}"/>'
    elif kind == "bounce":
        shape = f'<path d="M{x:.1f},{y - 7}l6,7l-6,7l-6,-7z" fill="{colour}"/>'
    elif kind == "waiting":
        shape = (
            f'<rect x="{x - 4:.1f}" y="{y - 6}" width="8" height="12" fill="#ffffff" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
    elif kind == "end":
        shape = f'<rect x="{x - 2:.1f}" y="{y - 7}" width="4" height="14" fill="{colour}"/>'
    elif kind == "discarded":
        shape = (
            f'<path d="M{x - 5:.1f},{y - 5}l10,10m0,-10l-10,10" stroke="{colour}" '
            'stroke-width="3"/>'
        )
    else:
        shape = (
            f'<circle cx="{x:.1f}" cy="{y}" r="5.5" fill="{colour}" stroke="#424242" '
            'stroke-width="1"/>'
        )
    return f'<g class="mark">{tip_el}{shape}</g>'


def _tip(e: Entry) -> str:
    letter = f" ({e.attempt.letter})" if e.attempt and e.attempt.letter else ""
    head = f"{when(e.time)} {e.kind}{letter}" + (f" {e.head}" if e.head else "")
    return "\n".join((head, *e.lines))


def _nudged(xs: Sequence[float]) -> list[float]:
    """Marks at least NUDGE apart, pushed right, and back left if past the plot's end.

    A row with more marks than fit NUDGE apart gets them closer together instead.
    """
    room = PLOT_RIGHT + NUDGE - PLOT_LEFT
    step = min(NUDGE, room / max(len(xs) - 1, 1))
    out: list[float] = []
    for x in xs:
        out.append(max(x, out[-1] + step) if out else x)
    limit: float = PLOT_RIGHT + NUDGE
    for i in reversed(range(len(out))):
        limit = min(out[i], limit)
        out[i], limit = limit, limit - step
    return out


def _label(text: str, x: float, y: float, *, bold: bool = False) -> str:
    room = LABEL_CHARS * 9 // 10 if bold else LABEL_CHARS
    short = text if len(text) <= room else text[: room - 1] + "…"
    weight = ' font-weight="bold"' if bold else ""
    return f'<text x="{x}" y="{y + 4}"{weight}><title>{escape(text)}</title>{escape(short)}</text>'


def _row(marks: Sequence[Entry], scale: Scale, y: float) -> list[str]:
    xs = _nudged([scale.x(e.time) for e in marks])
    return [_mark(e.kind, x, y, _tip(e)) for e, x in zip(marks, xs, strict=True)]


def _lane(lane_entries: list[Entry], scale: Scale, y: float) -> list[str]:
    """A recipient's lane: a line over its attempts, a bar for each slow one, the marks."""
    out = []
    first = min(e.attempt.started for e in lane_entries if e.attempt)
    last = max(e.time for e in lane_entries)
    out.append(
        f'<line x1="{scale.x(first):.1f}" y1="{y}" x2="{scale.x(last):.1f}" y2="{y}" '
        'stroke="#9e9e9e" stroke-width="2"/>'
    )
    for e in lane_entries:
        if e.attempt is not None and e.time > e.attempt.started:
            x0, x1 = scale.x(e.attempt.started), scale.x(e.time)
            out.append(
                f'<rect x="{x0:.1f}" y="{y - 3}" width="{max(x1 - x0, 1):.1f}" height="6" '
                f'fill="{COLOURS.get(e.kind, "#757575")}" opacity="0.35"/>'
            )
    return out + _row(lane_entries, scale, y)


Lanes = dict[tuple[str, str], float]  # (channel, recipient) -> y of its lane


def _message(
    tl: Timeline, msg: Message, scale: Scale, y: float, lanes: Lanes
) -> tuple[list[str], float]:
    """A message's header row and lanes from ``y`` down; returns the next free y."""
    story = entries(tl, msg)
    out = [_label(title(msg), 8, y, bold=True)]
    start = msg.queued if msg.queued is not None else min((e.time for e in story), default=0.0)
    stop = msg.ended if msg.ended is not None else tl.span
    x0, x1 = scale.x(start), scale.x(stop)
    out.append(
        f'<rect x="{x0:.1f}" y="{y - 4}" width="{max(x1 - x0, 2):.1f}" height="8" rx="4" '
        'fill="#e0e0e0"/>'
    )
    out += _row([e for e in story if e.attempt is None], scale, y)
    for channel, recipient in msg.recipients():
        y += ROW
        lanes[channel, recipient] = y
        out.append(_label(f"{channel} {recipient}", 24, y))
        lane = [
            e
            for e in story
            if e.attempt and (e.attempt.channel, e.attempt.recipient) == (channel, recipient)
        ]
        out += _lane(lane, scale, y)
    return out, y + ROW * 1.5


def _axis(scale: Scale, height: float, *, ends: bool) -> list[str]:
    """Ticks at round durations; ``ends`` False: all happened at +0s, so no end label."""
    out = [
        f'<line x1="{PLOT_LEFT}" y1="{AXIS - 8}" x2="{PLOT_RIGHT}" y2="{AXIS - 8}" '
        'stroke="#616161"/>'
    ]
    chosen: list[float] = []
    for t in (float(t) for t in reversed(TICKS) if t < scale.span):
        far = all(abs(scale.x(t) - scale.x(c)) >= 56 for c in [scale.span, *chosen])
        if far and scale.x(t) - PLOT_LEFT >= 40:
            chosen.append(t)
    for t in [0.0, *chosen, *([scale.span] if ends else [])]:
        x = scale.x(t)
        anchor = "end" if t == scale.span else "start" if t == 0 else "middle"
        out.append(f'<line x1="{x:.1f}" y1="{AXIS - 12}" x2="{x:.1f}" y2="{height}" class="grid"/>')
        out.append(f'<text x="{x:.1f}" y="{AXIS - 16}" text-anchor="{anchor}">{when(t)}</text>')
    return out


def _link(x0: float, y0: float, x1: float, y1: float, colour: str) -> str:
    return (
        f'<path d="M{x0:.1f},{y0 + 7}L{x1:.1f},{y1 - 7}" stroke="{colour}" '
        'stroke-dasharray="4 3" fill="none"/>'
    )


def _links(tl: Timeline, ys: dict[int, float], lanes: dict[int, Lanes], scale: Scale) -> list[str]:
    """Dashed lines from each bounce and each forward to the message it was queued as."""
    out = []
    for i, msg in enumerate(tl.messages):
        for b in msg.bounces:
            queued = None if b.message is None else tl.messages[b.message].queued
            if b.message is not None and queued is not None:
                x0, x1 = scale.x(b.time), scale.x(queued)
                out.append(_link(x0, ys[i], x1, ys[b.message], COLOURS["bounce"]))
        for a in msg.attempts:
            new = a.forwarded_as
            queued = None if new is None else tl.messages[new].queued
            if new is not None and queued is not None and a.finished is not None:
                x0, x1 = scale.x(a.finished), scale.x(queued)
                y0 = lanes[i][a.channel, a.recipient]
                out.append(_link(x0, y0, x1, ys[new], COLOURS["success"]))
    return out


def svg(tl: Timeline) -> str:
    scale = Scale(max(tl.span, 1.0))
    body: list[str] = []
    ys: dict[int, float] = {}
    lanes: dict[int, Lanes] = {}
    y = AXIS + ROW / 2
    for i, msg in enumerate(tl.messages):
        ys[i], lanes[i] = y, {}
        rows, y = _message(tl, msg, scale, y, lanes[i])
        body += rows
    height = y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" role="img">',
        *_axis(scale, height - ROW, ends=tl.span > 0),
        *_links(tl, ys, lanes, scale),
        *body,
        "</svg>",
    ]
    return "\n".join(parts)


def legend() -> str:
    items = []
    for i, (kind, text) in enumerate(LEGEND.items()):
        x = 12 + (i % 5) * 215
        y = 16 + (i // 5) * 24
        items.append(
            _mark(kind, x, y, text) + f'<text x="{x + 12}" y="{y + 4}">{escape(text)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="56">'
        f"{''.join(items)}</svg>"
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #212121; }
svg text { font-family: system-ui, sans-serif; font-size: 12px; fill: #212121; }
svg .grid { stroke: #eeeeee; }
svg .mark:hover { opacity: 0.7; }
h2 .pass, h2 .xfail { color: #2e7d32; } h2 .fail, h2 .error, h2 .xpass { color: #c62828; }
pre { background: #fafafa; padding: 0.7em; overflow-x: auto; }
p.note { color: #616161; max-width: 70em; }
"""


def _section(page: Page) -> str:
    head = (
        f'<h2><span class="{escape(page.status)}">{escape(page.status.upper())}</span> '
        f"{escape(page.title)}</h2>"
    )
    if not page.timeline.messages:
        return head + "<p>qmail-send logged no messages.</p>"
    text = "\n".join(as_text(page.timeline))
    return (
        f"{head}\n{svg(page.timeline)}\n"
        f"<details><summary>as text</summary><pre>{escape(text)}</pre></details>"
    )


def render(pages: Sequence[Page], *, source: str) -> str:
    """The whole page: a title, the legend, a section per scenario."""
    sections = "\n".join(_section(p) for p in pages)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>qmail-sim show {escape(source)}</title>
<style>{STYLE}</style></head>
<body>
<h1>qmail-sim show {escape(source)}</h1>
<p class="note">Each message as qmail-send logged it, over virtual time since the scenario
started. Time runs on a square-root scale, so qmail's retries (at birth + (&#8730;age + c)&#178;)
come at even steps. Hover over a mark for its time and report.</p>
{legend()}
{sections}
</body></html>
"""
