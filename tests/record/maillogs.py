"""qmail-send logs for tests: splogger, multilog or plain, at qmail's retry times."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from harness.reproduce_history import schedule
from harness.timeline_log import TAI64_BASE

BIRTH = 1765015200
CNAME = "CNAME_lookup_failed_temporarily._(#4.4.3)/"
SUCCESS = "127.0.2.10_accepted_message./Remote_host_said:_250_ok/"


@dataclass(frozen=True)
class Entry:
    at: float  # seconds after BIRTH
    text: str


def splogger(e: Entry) -> str:
    return f"Dec  6 10:00:00 mx qmail: {BIRTH + e.at:.6f} {e.text}"


def multilog(e: Entry) -> str:
    whole = BIRTH + int(e.at)
    nanos = round((e.at - int(e.at)) * 1e9)
    return f"@{TAI64_BASE + whole + 10:016x}{nanos:08x} {e.text}"


def plain(e: Entry) -> str:
    return e.text


FORMATS = {"splogger": splogger, "multilog": multilog, "plain": plain}


def story(
    msg: int, rcpt: str, results: list[tuple[str, str, float]], *, end: bool = True
) -> list[Entry]:
    """A message's log: each (result, report, seconds it took) at qmail's retry times."""
    out = [
        Entry(0.0, f"new msg {msg}"),
        Entry(0.0, f"info msg {msg}: bytes 300 from <alice@example.org> qp 100 uid 0"),
    ]
    times = schedule(len(results))
    for n, ((result, report, took), start) in enumerate(zip(results, times, strict=True)):
        out.append(Entry(start, f"starting delivery {n + 1}: msg {msg} to remote {rcpt}"))
        out.append(Entry(start + took, f"delivery {n + 1}: {result}: {report}"))
        out.append(Entry(start + took, "status: local 0/10 remote 0/20"))
    if end:
        out.append(Entry(out[-1].at, f"end msg {msg}"))
    return out


def write(path: Path, entries: list[Entry], fmt: str, *, zipped: bool = False) -> Path:
    text = "".join(FORMATS[fmt](e) + "\n" for e in entries)
    data = gzip.compress(text.encode()) if zipped else text.encode()
    path.write_bytes(data)
    return path
