"""A reproduction that replays a message's whole history, at qmail-send's retry times.

Given the scenario :func:`harness.reproduce.build` made for the first problem
and the :class:`harness.maillog.History` of the message, :func:`replay`
changes its steps so that the simulator goes through the same sequence:

- the message is injected at virtual time 0 (its birth) and tried at once;
- each later attempt comes at qmail-send's next retry, ``birth +
  (isqrt(recent - birth) + 20)**2`` (qmail-send.c nextretry(), chanskip 20 for
  the remote channel, :func:`server.send.schedule.nextretry`), where
  ``recent`` is the time of the pass that *opened* the previous attempt
  (pass_dochan() sets the job's retry before delivering, so however long the
  attempt took, a DNS timeout included, the next one is not moved); the
  steps advance the clock to each one;
- the condition ends where the log shows it ended: before a final success the
  DNS rules get ``until`` and a peer's script is limited to the failing
  connections; when queuelifetime ran out (the last deferral logged as a
  failure ending "I'm not going to try again…", qmail-send.c del_dochan())
  the condition stays and ``queuelifetime`` is set so that only the last
  attempt starts past it;
- the last step checks every result, in order.

:func:`schedule_notes` compares the log's times with qmail's schedule. A
slow result does not move the next retry (it is fixed when an attempt
starts), so a retry off the schedule means qmail-send was stopped or
restarted, or its queue was busy.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from itertools import pairwise
from typing import Any

from harness.maillog import DYING, History
from harness.reproduce_fixes import DELIVERED
from server.send.schedule import DEFAULT_LIFETIME, nextretry

Data = dict[str, Any]
SLACK = 2  # seconds: a log's retry this close to the schedule is on time


def schedule(tries: int) -> list[int]:
    """qmail's start times for ``tries`` remote attempts of a message born at 0."""
    times = [0]
    while len(times) < tries:
        times.append(nextretry(0, times[-1], "remote"))
    return times


def schedule_notes(h: History) -> list[str]:
    if not h.timed:
        return []
    notes = []
    for before, this in pairwise(h.tries):
        due = nextretry(0, int(before.started), "remote")
        gap = this.started - due
        if abs(gap) > SLACK:
            when = "later" if gap > 0 else "earlier"
            notes.append(
                f"attempt at +{this.started:.0f}s is {abs(gap):.0f}s {when} than qmail's retry "
                f"time +{due}s (qmail-send stopped or restarted, or a busy queue)"
            )
    if not notes and len(h.tries) > 1:
        notes.append(f"all {len(h.tries)} attempts at qmail's retry times (birth + (√age + 20)²)")
    return notes


def _expect_lines(h: History, first_line: str) -> list[str]:
    first = h.first_problem
    lines = []
    for t in h.tries:
        if t.result == "success":
            lines.append(DELIVERED)
        elif t.report == first.report and t.result == first.result:
            lines.append(first_line)
        elif t.report == first.report + DYING and t.result == "failure":
            lines.append("failure: " + first_line.partition(": ")[2] + DYING)
        else:
            lines.append(f"{t.result}: {t.report}")
    if h.ending in ("expired", "failure"):
        lines.append("~ ^bounce msg \\d+ qp \\d+$")
    return lines


def _end_condition(data: Data, h: History, until: int) -> None:
    """Make the failing condition stop before the attempt that succeeded."""
    problems = sum(t.result in ("deferral", "failure") for t in h.tries)
    for rule in data.get("dns", {}).get("rules", []):
        rule["until"] = f"{until}s"
    for ip, script in data.get("peers", {}).items():
        if script != {"accept": "all"}:
            data["peers"][ip] = {"accept": "all", "attempts": [dict(script)] * problems}


def replay(data: Data, h: History, first_line: str) -> tuple[Data, list[str]]:
    """``data`` (one problem) made into the whole history; and what was decided."""
    out = copy.deepcopy(data)
    tries = len(h.tries)
    notes = []
    if h.ending == "success" and out["dns"].get("resolv_conf") is not None:
        # a scenario's resolv.conf stays as it is: the success after it was mended is left out
        tries -= 1
        h = replace(h, tries=h.tries[:-1], ending="pending")
        notes.append("resolv.conf cannot change within a scenario: the final success is left out")
    times = schedule(tries)
    notes.append(f"attempts in the simulator at +{', +'.join(map(str, times))}s")
    steps = out["steps"][:2]  # inject, run idle
    for i, (before, this) in enumerate(pairwise(times)):
        # qmail-send wakes SLEEP_FUZZ after a retry is due: land a little past each one
        steps.append({"advance": f"{this - before + (SLACK if i == 0 else 0)}s"})
    if h.ending == "success" and len(times) > 1:
        until = (times[-2] + times[-1]) // 2
        _end_condition(out, h, until)
        notes.append(f"the condition ends at +{until}s, before the successful attempt")
    if h.ending == "expired" and "queuelifetime" not in out["control"]:
        # the last attempt started past queuelifetime (pass_dochan's flagdying), the
        # ones before it did not: a lifetime just under the last start does that
        lifetime = DEFAULT_LIFETIME
        if h.bounced is not None and h.bounced < DEFAULT_LIFETIME and len(times) > 1:
            lifetime = times[-1] - 1
            notes.append(f"bounced at +{h.bounced:.0f}s: queuelifetime taken as {lifetime}s")
        out["control"]["queuelifetime"] = str(lifetime)
    expect: Data = {"log": _expect_lines(h, first_line)}
    if h.ending != "pending":  # a bounce goes to the local sender and is delivered at once
        expect["queue"] = {"messages": 0}
    steps.append({"expect": expect})
    out["steps"] = steps
    out["name"] = f"{out['name']} ({len(h.tries)} attempts, {h.ending})"
    return out, notes


__all__ = ["replay", "schedule", "schedule_notes"]
