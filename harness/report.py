"""How results are shown: one line per scenario, details for failures, JUnit XML.

A failure shows the step and line, the message, expected and actual lines
side by side, and for a session the transcript as it really went (server
lines that differ are marked). :func:`write_junit` writes the JUnit XML that
CI systems read (one ``testcase`` per scenario, ``failure``/``error``/
``skipped`` elements).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from harness.outcome import Result

LABELS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "xfail": "XFAIL", "xpass": "XPASS"}
WIDTH = 60


def result_line(r: Result) -> str:
    tags = f" [{', '.join(r.tags)}]" if r.tags else ""
    return f"{LABELS[r.status]:5} {r.id}{tags} ({r.seconds * 1000:.0f} ms)"


def side_by_side(
    expected: Sequence[str],
    actual: Sequence[str],
    width: int = WIDTH,
    same: Sequence[bool] | None = None,
) -> list[str]:
    rows = [f"  {'expected':<{width}} | actual", f"  {'-' * width}-+-{'-' * 20}"]
    for i in range(max(len(expected), len(actual))):
        left = expected[i] if i < len(expected) else ""
        right = actual[i] if i < len(actual) else ""
        ok = same[i] if same is not None and i < len(same) else left == right
        mark = " " if ok else "!"
        if len(left) > width:
            left = left[: width - 1] + "…"
        rows.append(f"{mark} {left:<{width}} | {right}")
    return rows


def details(r: Result) -> list[str]:
    if r.ok and r.status != "xfail":
        return [f"    kept: {r.workdir}"] if r.workdir is not None else []
    first, *more = r.message.splitlines() or [""]
    out = [f"    at {r.step}: {first}" if r.step else f"    {first}"]
    out += [f"    {line}" for line in more]
    if r.expected or r.actual:
        out += ["    " + row for row in side_by_side(r.expected, r.actual, same=r.same)]
    if r.transcript:
        session = any(t[:2] in ("S:", "C:", "R:") for t in r.transcript)
        out.append("    transcript:" if session else "    details:")
        out += [f"      {line}" for line in r.transcript]
    if r.workdir is not None:
        out.append(f"    kept: {r.workdir}")
    return out


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(results: Sequence[Result], seconds: float) -> str:
    counts = Counter(r.status for r in results)
    parts = [f"{counts[s]} {s}" for s in ("pass", "fail", "error", "xfail", "xpass") if counts[s]]
    rate = len(results) / seconds if seconds > 0 else 0.0
    head = plural(len(results), "scenario")
    return f"{head}: {', '.join(parts) or 'none'} in {seconds:.2f}s ({rate:.1f}/s)"


def relative_file(file: str) -> str:
    """A scenario file as reports name it: relative to the current directory
    when given as an absolute path (a checkout's place differs between CI
    machines, and JUnit files from several are merged), with ``/``."""
    path = Path(file)
    if path.is_absolute():
        path = Path(os.path.relpath(path))
    return path.as_posix()


STATUSES = ("pass", "fail", "error", "xfail", "xpass")


def breakdown(results: Sequence[Result]) -> str:
    """A table of outcomes by directory, then by tag (the end of ``run``)."""
    groups: dict[str, Counter[str]] = {}
    for r in results:
        folder = str(PurePosixPath(relative_file(r.file)).parent)
        groups.setdefault(f"{folder}/", Counter())[r.status] += 1
    by_tag: dict[str, Counter[str]] = {}
    for r in results:
        for tag in r.tags:
            by_tag.setdefault(f"tag:{tag}", Counter())[r.status] += 1
    width = max([len("directory/tag"), *(len(k) for k in [*groups, *by_tag])])
    rows = [f"{'directory/tag':{width}}" + "".join(f"{s:>7}" for s in (*STATUSES, "total"))]
    for name, counts in [*sorted(groups.items()), *sorted(by_tag.items())]:
        cells = [counts[s] for s in STATUSES]
        rows.append(f"{name:{width}}" + "".join(f"{n:>7}" for n in (*cells, sum(cells))))
    return "\n".join(rows)


def write_junit(results: Sequence[Result], path: Path, seconds: float) -> None:
    counts = Counter(r.status for r in results)
    suite = ET.Element(
        "testsuite",
        name="qmail-sim",
        tests=str(len(results)),
        failures=str(counts["fail"] + counts["xpass"]),
        errors=str(counts["error"]),
        skipped=str(counts["xfail"]),
        time=f"{seconds:.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=relative_file(r.file),
            name=r.name,
            time=f"{r.seconds:.3f}",
        )
        text = "\n".join(details(r))
        if r.status in ("fail", "xpass"):
            ET.SubElement(case, "failure", message=r.message).text = text
        elif r.status == "error":
            ET.SubElement(case, "error", message=r.message).text = text
        elif r.status == "xfail":
            ET.SubElement(case, "skipped", message=r.message)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
