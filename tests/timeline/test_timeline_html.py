"""harness.timeline_html: one self-contained page, an SVG per scenario."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.timeline import Timeline, build, entries
from harness.timeline_html import PLOT_LEFT, PLOT_RIGHT, Page, Scale, _nudged, render, svg
from server.send import log as qlog

SVG = "{http://www.w3.org/2000/svg}"

LOG = [
    (0.0, qlog.new_msg(7)),
    (0.0, qlog.info_msg(7, 300, "a<b>&c@example.org", 1001, 1000)),
    (0.0, qlog.starting_delivery(1, 7, "remote", "bob@far.example")),
    (0.0, qlog.delivery_deferral(1, b"CNAME lookup failed temporarily. (#4.4.3)\n")),
    (0.0, qlog.starting_delivery(2, 7, "local", "carol@example.org")),
    (60.0, qlog.delivery_success(2, b"did 1+0+0\n")),
    (401.0, qlog.starting_delivery(3, 7, "remote", "bob@far.example")),
    (401.0, qlog.delivery_failure(3, b"Sorry, I couldn't find any host by that name.\n")),
    (401.0, qlog.bounce_msg(7, 1002)),
    (401.0, qlog.end_msg(7)),
    (401.0, qlog.new_msg(8)),
    (401.0, qlog.info_msg(8, 900, "", 1002, 1000)),
    (401.0, qlog.starting_delivery(4, 8, "local", "a<b>&c@example.org")),
]


def _svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, re.S)]


def _titles(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}title")]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]


def test_a_page_is_self_contained_and_its_svg_well_formed() -> None:
    page = render([Page(title="t <1>", status="pass", timeline=build(LOG))], source="x.yaml")
    assert page.startswith("<!doctype html>")
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert not {"src", "href", "onclick", "onload"} & set(parser.attrs)
    assert "t &lt;1&gt;" in page and "a&lt;b&gt;&amp;c@example.org" in page
    legend, _drawing = _svgs(page)
    assert len(_titles(legend)) == 10


def test_each_event_is_a_mark_with_its_report_in_the_title() -> None:
    tl = build(LOG)
    root = ET.fromstring(svg(tl))
    titles = _titles(root)
    marks = [t for t in titles if t.startswith("+")]
    assert len(marks) == sum(len(entries(tl, m)) for m in tl.messages) == 9
    assert (
        "+0s deferral (Z) remote bob@far.example, try 1, next try +6m40s\n"
        "CNAME lookup failed temporarily. (#4.4.3)"
    ) in marks
    assert "+1m success (K) local carol@example.org, try 1, took 1m\ndid 1+0+0" in marks
    assert "+6m41s pending local a<b>&c@example.org, try 1: no result logged" in titles
    # labels: two message titles and a lane per recipient, full text in a title
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert any(t.endswith("remote bob@far.example") for t in texts)
    assert any(t.startswith("msg 8 from <>, 900 bytes") for t in texts)
    # the bounce is joined to the message it became by a dashed line
    assert sum(1 for p in root.iter(f"{SVG}path") if p.get("stroke-dasharray")) == 1


def test_result_colours() -> None:
    root = ET.fromstring(svg(build(LOG)))
    fills = {}
    for g in root.iter(f"{SVG}g"):
        tip = g.find(f"{SVG}title")
        shape = g.find(f"{SVG}circle")
        if tip is not None and shape is not None and tip.text:
            fills[tip.text.split()[1]] = shape.get("fill")  # "+0s deferral (Z) ..."
    assert fills == {
        "deferral": "#ef6c00",
        "success": "#2e7d32",
        "failure": "#c62828",
        "pending": "#ffffff",
    }


def test_the_square_root_scale() -> None:
    scale = Scale(400.0)
    assert scale.x(0) == PLOT_LEFT and scale.x(400) == PLOT_RIGHT
    assert scale.x(100) == PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) / 2
    assert Scale(0.0).x(5.0) == PLOT_LEFT


def test_marks_at_one_time_are_spread_but_stay_in_the_picture() -> None:
    assert _nudged([10.0, 10.0, 10.0, 50.0]) == [10.0, 21.0, 32.0, 50.0]
    end = [float(PLOT_RIGHT)] * 3
    assert _nudged(end) == [PLOT_RIGHT - 11.0, float(PLOT_RIGHT), PLOT_RIGHT + 11.0]
    assert _nudged([]) == []
    crowd = _nudged([float(PLOT_LEFT)] * 500)
    assert crowd[0] >= PLOT_LEFT - 1e-6 and crowd[-1] <= PLOT_RIGHT + 11
    assert all(b > a for a, b in itertools.pairwise(crowd))


def test_nothing_logged() -> None:
    page = render([Page(title="quiet", status="fail", timeline=Timeline())], source="q.yaml")
    assert "qmail-send logged no messages" in page and 'class="fail"' in page


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    words = st.sampled_from(["new msg", "end msg", "bounce msg", "info msg", "delivery"])
    lines: list[tuple[float, str]] = []
    t = 0.0
    for _ in range(draw(st.integers(0, 25))):
        t += draw(st.sampled_from([0.0, 0.5, 1.0, 400.0, 86400.0]))
        kind = draw(words)
        n, d = draw(st.integers(1, 4)), draw(st.integers(1, 6))
        text = draw(st.text(max_size=12))
        line = {
            "new msg": f"new msg {n}",
            "end msg": f"end msg {n}",
            "bounce msg": f"bounce msg {n} qp {d}",
            "info msg": f"info msg {n}: bytes 5 from <{text}> qp {d} uid 0",
            "delivery": f"starting delivery {d}: msg {n} to local {text}",
        }[kind]
        lines.append((t, line))
        if kind == "delivery" and draw(st.booleans()):
            word = draw(st.sampled_from(["success", "deferral", "failure"]))
            lines.append((t + draw(st.sampled_from([0.0, 30.0])), f"delivery {d}: {word}: {text}"))
    return build(lines)


@settings(max_examples=60)
@given(timelines())
def test_any_timeline_draws_as_well_formed_svg(tl: Timeline) -> None:
    root = ET.fromstring(svg(tl))
    for el in root.iter():
        for name in ("x", "cx", "x1", "x2"):
            if el.get(name) is not None:
                assert 0 <= float(el.get(name) or 0) <= float(root.get("width") or 0)


def test_the_axis_labels() -> None:
    """Round durations between the ends; no made-up end when all happened at +0s."""
    at_once = ET.fromstring(svg(build([(0.0, "new msg 1"), (0.0, "end msg 1")])))
    labels = ["".join(t.itertext()) for t in at_once.iter(f"{SVG}text")]
    assert [x for x in labels if x.startswith("+")] == ["+0s"]
    week = ET.fromstring(svg(build([(0.0, "new msg 1"), (608401.0, "end msg 1")])))
    ticks = ["".join(t.itertext()) for t in week.iter(f"{SVG}text")]
    ticks = [x for x in ticks if x.startswith("+")]
    assert ticks[0] == "+0s" and ticks[-1] == "+7d1h1s" and "+1d" in ticks and "+7d" not in ticks


def test_a_forward_is_joined_to_its_copy() -> None:
    lines = [
        (0.0, "new msg 7"),
        (0.0, "info msg 7: bytes 100 from <bob@example.org> qp 20 uid 1000"),
        (0.0, "starting delivery 1: msg 7 to local postmaster@example.org"),
        (0.0, "delivery 1: success: did_0+1+0/qp_21/"),
        (3.0, "new msg 8"),
        (3.0, "info msg 8: bytes 130 from <bob@example.org> qp 21 uid 1000"),
    ]
    root = ET.fromstring(svg(build(lines)))
    [link] = [p for p in root.iter(f"{SVG}path") if p.get("stroke-dasharray")]
    assert link.get("stroke") == "#2e7d32"
