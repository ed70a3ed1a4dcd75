"""Shared by the smtp and pop3 steps: replay a transcript, compare the replies.

The client's lines go to the server turn by turn (harness.converse: a line
or a pipelined group, then the server lines owed for it; the simulator hands
its in-process server all of them at once) and the output is split into
CRLF lines; the ``S:`` lines must match them one for one, in order (exact
text, or ``~ regex`` searched in the line). A line the server sent without its
CRLF shows as ``…<no CRLF>``; extra server lines are a failure too.
"""

from __future__ import annotations

from harness.converse import turns
from harness.outcome import StepFailure
from harness.scenario.model import SessionStep
from harness.scenario.values import Match
from harness.targets.base import Target

NO_CRLF = " <no CRLF>"


def server_lines(output: bytes) -> list[str]:
    parts = output.split(b"\r\n")
    lines = [p.decode("latin-1") for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1].decode("latin-1") + NO_CRLF)
    return lines


def replay(step: SessionStep, target: Target) -> list[str]:
    """Play the step's transcript; the server's lines (StepFailure if they differ)."""
    result = target.session(step, turns(step.transcript))
    actual = _replies(step, result.stdout)
    expected = [line.expect for line in step.transcript if line.expect is not None]
    problem = _compare(expected, actual)
    if problem is None and step.exit is not None and result.exit != step.exit:
        problem = f"exit code {result.exit}, expected {step.exit}"
    if problem is not None:
        if result.stderr:
            problem += "\nstderr: " + result.stderr.decode("utf-8", "replace").strip()
        same = [i < len(actual) and matches(e, actual[i]) for i, e in enumerate(expected)]
        raise StepFailure(
            problem,
            expected=[str(e) for e in expected],
            actual=actual,
            transcript=_as_played(step, actual),
            same=same,
        )
    return actual


def _replies(step: SessionStep, output: bytes) -> list[str]:
    """The server's lines, or its netstrings for a qmtp or qmqp step."""
    if step.kind in ("qmtp", "qmqp"):
        from harness.steps.netstrings import server_netstrings

        return server_netstrings(output)
    return server_lines(output)


def matches(want: Match, got: str) -> bool:
    """An ``S:`` line: exact text, or ``~ regex`` found anywhere in the line."""
    return want.search(got) if want.regex else want.text == got


def _compare(expected: list[Match], actual: list[str]) -> str | None:
    for i, want in enumerate(expected):
        if i >= len(actual):
            return f"server line {i + 1}: expected {str(want)!r}, the server sent nothing more"
        if not matches(want, actual[i]):
            return f"server line {i + 1}: expected {str(want)!r}, got {actual[i]!r}"
    if len(actual) > len(expected):
        return f"server line {len(expected) + 1}: unexpected {actual[len(expected)]!r}"
    return None


def _as_played(step: SessionStep, actual: list[str]) -> list[str]:
    """The transcript with the server's real lines in place of the expected ones."""
    out = []
    n = 0
    for line in step.transcript:
        if line.expect is not None:
            got = actual[n] if n < len(actual) else "<nothing>"
            ok = n < len(actual) and matches(line.expect, got)
            out.append(f"S: {got}" + ("" if ok else f"    <-- expected {line.expect}"))
            n += 1
        else:
            out.append(f"{line.who}: " + line.data.decode("latin-1").rstrip("\r\n"))
    out.extend(f"S: {extra}    <-- unexpected" for extra in actual[n:])
    return out
