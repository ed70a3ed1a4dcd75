"""Parsers for the small value languages inside scenarios.

Durations (``90s``, ``2h``, ``8d``, ``1h30m``, a bare number of seconds),
instants (``2026-12-01T10:00:00Z`` or seconds since the epoch), matchers
(``text`` is a substring or exact text; ``~ regex`` is a regular
expression) and transcripts (``S:``/``C:``/``R:`` lines). Each parser raises
:class:`ValueError` with a short reason; the loader adds file, line and key.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Literal

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """``90s`` → 90.0, ``1h30m`` → 5400.0, ``8d`` → 691200.0, ``42`` → 42.0."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 2h, 8d, 1h30m)")
    return total


def format_duration(seconds: float) -> str:
    """The inverse, for reports: 5400 → ``1h30m``."""
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def parse_instant(text: str) -> float:
    """``2026-12-01T10:00:00Z`` (ISO 8601 with a zone) or ``1796119200`` → epoch seconds.

    A time without a zone is refused: it would mean something else on every
    machine, and a run must not depend on the TZ it happens to have."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not an instant: {text!r} (use e.g. 2026-12-01T10:00:00Z or epoch seconds)"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z for UTC, or +01:00)")
    return when.timestamp()


@dataclass(frozen=True, kw_only=True)
class Match:
    """Expected text: exact/substring text, or a regular expression (``~ re``)."""

    text: str
    regex: bool = False

    def fullmatch(self, actual: str) -> bool:
        if self.regex:
            return re.fullmatch(self.text, actual) is not None
        return actual == self.text

    def search(self, actual: str) -> bool:
        if self.regex:
            return re.search(self.text, actual) is not None
        return self.text in actual

    def __str__(self) -> str:
        return f"~ {self.text}" if self.regex else self.text


def parse_match(text: str) -> Match:
    if text.startswith("~ ") or text == "~":
        pattern = text[2:]
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return Match(text=pattern, regex=True)
    return Match(text=text)


@dataclass(frozen=True, kw_only=True)
class TranscriptLine:
    """One line of an SMTP/POP3 transcript.

    ``S`` is a line the server must send (``expect``); ``C`` one the client sends
    followed by CRLF; ``R`` raw client bytes with backslash escapes and no CRLF
    added (for bare LF and other broken clients). ``offset`` is the line's
    index inside the transcript text, for error messages.
    """

    who: Literal["S", "C", "R"]
    expect: Match | None = None
    data: bytes = b""
    offset: int = 0


_ESCAPES = {"\\": b"\\", "r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0"}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.?)", re.DOTALL)


def unescape(text: str) -> bytes:
    """``R:`` text: ``\\r \\n \\t \\0 \\\\ \\xHH``; other characters as UTF-8."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        code = m.group(1)
        if code.startswith("x") and len(code) == 3:
            out.append(int(code[1:], 16))
        elif code in _ESCAPES:
            out += _ESCAPES[code]
        else:
            raise ValueError(f"bad escape \\{code} (use \\r \\n \\t \\0 \\\\ \\xHH)")
        pos = m.end()
    return bytes(out + text[pos:].encode("utf-8"))


def _client_bytes(who: str, text: str) -> bytes:
    if who == "C":
        return text.encode("utf-8") + b"\r\n"
    return unescape(text)


class TranscriptError(ValueError):
    """A bad transcript line; ``offset`` is its index, for the loader's line number."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def parse_transcript(text: str) -> tuple[TranscriptLine, ...]:
    """Parse ``S: …``/``C: …``/``R: …`` lines; blank lines and ``#`` lines are skipped."""
    lines: list[TranscriptLine] = []
    for offset, raw in enumerate(text.split("\n")):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        who, sep, rest = raw.partition(":")
        if not sep or who not in ("S", "C", "R"):
            raise TranscriptError(
                f"transcript line {offset + 1} {raw!r}: must start with S:, C: or R:", offset
            )
        rest = rest[1:] if rest.startswith(" ") else rest
        try:
            if who == "S":
                lines.append(TranscriptLine(who="S", expect=parse_match(rest), offset=offset))
            else:
                data = _client_bytes(who, rest)
                lines.append(TranscriptLine(who=who, data=data, offset=offset))  # type: ignore[arg-type]
        except ValueError as exc:
            raise TranscriptError(f"transcript line {offset + 1}: {exc}", offset) from None
    return tuple(lines)
