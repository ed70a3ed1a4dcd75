"""Parse the text that ``dig`` prints, for ``qmail-sim reproduce``.

A file may hold several dig runs one after another (``dig far.example ANY;
dig far.example MX``). Each run becomes a :class:`DigAnswer`: the question,
the status of the ``->>HEADER<<-`` line (NOERROR, SERVFAIL, NXDOMAIN …), the
flags (``qr aa tc rd ra`` …), the records of the ANSWER, AUTHORITY and
ADDITIONAL sections as zone-file lines, ``MSG SIZE rcvd``, and whether dig
said the UDP answer was truncated (``;; Truncated, retrying in TCP mode.``)
or that no answer came at all (``connection timed out`` / ``timed out``).

The layout read is dig's from BIND 9.10 to 9.20: ``;;`` comment lines, a
blank line between sections, records as ``name ttl class type rdata``.
``+short`` output carries none of this and is refused. Anything that does not
fit raises :class:`DigParseError` (a ``ValueError``) naming the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SECTIONS = ("QUESTION", "ANSWER", "AUTHORITY", "ADDITIONAL")

_HEADER = re.compile(r";; ->>HEADER<<- opcode: (\w+), status: ([\w-]+), id: (\d+)")
_FLAGS = re.compile(r";; flags:([^;]*);")
_SECTION = re.compile(r";; (QUESTION|ANSWER|AUTHORITY|ADDITIONAL) SECTION:")
_SIZE = re.compile(r";; MSG SIZE\s+rcvd: (\d+)")
_SERVER = re.compile(r";; SERVER: ([^#\s]+)")
_QUESTION = re.compile(r";(\S+)\s+(?:IN\s+)?([A-Z0-9]+)")
_RECORD = re.compile(r"(\S+)\s+(\d+)\s+(IN|CH|HS)\s+([A-Z][A-Z0-9-]*)\s+(.*)")
#: a run that got no answer at all; dig 9.18 also prints "communications error …
#: timed out" for each failed try, even one followed by a good retry, so that is not it
_TIMEOUT = re.compile(r";; (connection timed out|.*no servers could be reached)")
_TRUNCATED = ";; Truncated, retrying in TCP mode."
_START = re.compile(r"; <<>> DiG ")


class DigParseError(ValueError):
    """Text that is not dig output; ``lineno`` is 1-based."""

    def __init__(self, message: str, lineno: int, line: str) -> None:
        super().__init__(f"line {lineno}: {message}: {line[:100]!r}")
        self.lineno = lineno
        self.line = line


@dataclass(frozen=True, kw_only=True)
class Record:
    name: str  # lower case, with its trailing dot
    ttl: int
    type: str
    rdata: str

    def zone_line(self) -> str:
        return f"{self.name} {self.ttl} IN {self.type} {self.rdata}"


@dataclass(kw_only=True)
class DigAnswer:
    """One dig run."""

    qname: str = ""
    qtype: str = ""
    status: str = ""  # "" when no answer came
    flags: tuple[str, ...] = ()
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    msg_size: int | None = None
    server: str | None = None
    truncated: bool = False  # dig retried over TCP after a TC answer
    timed_out: bool = False

    @property
    def records(self) -> list[Record]:
        return self.answer + self.authority + self.additional

    @property
    def oversize(self) -> bool:
        """Did the answer not fit in 512 bytes of UDP (RFC 1035 4.2.1)?"""
        return self.truncated or "tc" in self.flags or (self.msg_size or 0) > 512


def _record(text: str, lineno: int) -> Record:
    m = _RECORD.fullmatch(text.strip())
    if not m:
        raise DigParseError("expected a record 'name ttl class type data'", lineno, text)
    name = m[1].lower()
    if not name.endswith("."):
        name += "."
    return Record(name=name, ttl=int(m[2]), type=m[4], rdata=m[5].strip())


_TYPES = {"A", "AAAA", "ANY", "MX", "CNAME", "TXT", "NS", "SOA", "PTR", "SRV", "HINFO"}


#: dig options that take the next word as their value (dig(1))
_VALUE_OPTIONS = {"-b", "-c", "-f", "-k", "-p", "-q", "-t", "-x", "-y"}


def _from_command(text: str) -> DigAnswer:
    """The question from ``; <<>> DiG 9.18 <<>> [@server] [-p N] name [type]`` (all a
    timed-out run prints)."""
    words = iter(text.split("<<>>")[-1].split())
    run = DigAnswer()
    for word in words:
        if word in _VALUE_OPTIONS:
            value = next(words, "")
            if word == "-t":
                run.qtype = value.upper()
            elif word in ("-q", "-x"):
                run.qname = value.lower().rstrip(".") + "."
        elif word.startswith(("@", "+", "-")):
            continue
        elif word.upper() in _TYPES and run.qname:
            run.qtype = word.upper()
        elif not run.qname:
            run.qname = word.lower().rstrip(".") + "."
    run.qtype = run.qtype or "A"
    return run


class _Reader:
    def __init__(self) -> None:
        self.runs: list[DigAnswer] = []
        self.section: str | None = None

    @property
    def current(self) -> DigAnswer:
        if not self.runs:
            self.runs.append(DigAnswer())
        return self.runs[-1]

    def line(self, text: str, lineno: int) -> None:
        stripped = text.strip()
        if not stripped:
            self.section = None
            return
        if _START.match(stripped):
            self.runs.append(_from_command(stripped))
            self.section = None
            return
        if stripped.startswith(";"):
            self.comment(stripped, lineno)
            return
        if self.section not in ("ANSWER", "AUTHORITY", "ADDITIONAL"):
            raise DigParseError("a record outside ANSWER/AUTHORITY/ADDITIONAL", lineno, text)
        getattr(self.current, self.section.lower()).append(_record(stripped, lineno))

    def comment(self, text: str, lineno: int) -> None:
        run = self.current
        if m := _HEADER.match(text):
            if run.status:  # a second header without "; <<>> DiG": a new run
                self.runs.append(run := DigAnswer())
            run.status = m[2]
        elif (m := _FLAGS.match(text)) and text.startswith(";; flags:"):
            run.flags = tuple(m[1].split())
        elif m := _SECTION.match(text):
            self.section = m[1]
        elif self.section == "QUESTION" and (m := _QUESTION.fullmatch(text)):
            run.qname, run.qtype = m[1].lower().rstrip(".") + ".", m[2]
        elif m := _SIZE.match(text):
            run.msg_size = int(m[1])
        elif m := _SERVER.match(text):
            run.server = m[1]
        elif text == _TRUNCATED:
            run.truncated = True
        elif _TIMEOUT.match(text):
            run.timed_out = True
        # other comments (OPT pseudosection, Query time, WHEN, cookies) carry nothing we use


def parse(text: str) -> list[DigAnswer]:
    """Every dig run in ``text``; DigParseError when a line does not fit."""
    reader = _Reader()
    for lineno, line in enumerate(text.splitlines(), 1):
        reader.line(line, lineno)
    runs = [r for r in reader.runs if r.status or r.timed_out or r.qname]
    if not runs:
        raise DigParseError("no dig answer (no ->>HEADER<<- line)", 1, text[:100])
    for run in runs:
        if not run.status and not run.timed_out:
            raise DigParseError(f"the run for {run.qname or '?'} has no ->>HEADER<<- line", 1, "")
    return runs
