"""ucspi-tcp 0.88 access rules: the text syntax, the cdb keys, and the lookup.

Pure functions, no I/O; tcprules, tcprulescheck and tcpserver use them.

**Text** (tcprules(1), tcprules.c). One rule a line: ``ADDRESS:INSTRUCTION``.
Lines starting with ``#`` and empty lines are skipped; trailing spaces, tabs
and the newline are removed. The address ends at the *first* colon; a line
without a colon is skipped silently (as tcprules does). The instruction is
``allow`` or ``deny`` followed by any number of ``,VAR=XvalueX`` where the
character after ``=`` (usually ``"`` or ``'``) quotes the value up to its next
occurrence. Anything else is "unable to parse this line".

**Addresses**: ``1.2.3.4``, a prefix ``1.2.``, ``=host.name``, ``=.suffix``,
``=`` (any host with a name), ``info@1.2.3.4``, ``info@=host`` and the empty
address (default). An address without ``=`` and ``@`` that holds a ``-`` is a
numeric range: the digits around the first ``-`` (to the dot before it and
the dot after it) are expanded, ``1.2.3.4-7`` into four keys, ``10.1-3.``
into ``10.1.`` ``10.2.`` ``10.3.``; the top is capped at 255 and a missing
number counts as 0.

**Data**: ``deny`` stores ``D\\0``; ``allow`` stores nothing; each variable
adds ``+VAR=value\\0``.

**Lookup** (rules.c): the first key present wins, in this order:
``info@ip``, ``info@=host`` (with TCPREMOTEINFO), ``ip``, ``=host``, each IP
prefix ending in a dot (longest first), ``=.suffix`` for each dot in the host
name (longest first), ``=`` (with a host), and finally the empty key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from server.cdb import Reader

#: tcprules caps the top of a range at 255 (an IPv4 octet).
RANGE_TOP = 255


class RulesSyntaxError(Exception):
    """A line tcprules cannot parse; ``line`` is the line, trailing space stripped."""

    def __init__(self, line: bytes) -> None:
        super().__init__(line)
        self.line = line


@dataclass(frozen=True)
class Rule:
    """One parsed line: the address as written and the cdb data it stores."""

    address: bytes
    data: bytes


def _strip(line: bytes) -> bytes:
    return line.rstrip(b"\n \t")


def _instruction(line: bytes, rest: bytes) -> bytes:
    if rest.startswith(b"deny"):
        data, rest = b"D\0", rest[4:]
    elif rest.startswith(b"allow"):
        data, rest = b"", rest[5:]
    else:
        raise RulesSyntaxError(line)
    while rest:
        if rest[:1] != b",":
            raise RulesSyntaxError(line)
        eq = rest.find(b"=")
        if eq < 0 or eq + 1 >= len(rest):
            raise RulesSyntaxError(line)
        name = rest[1 : eq + 1]  # includes the "="
        quote = rest[eq + 1 : eq + 2]
        end = rest.find(quote, eq + 2)
        if end < 0:
            raise RulesSyntaxError(line)
        data += b"+" + name + rest[eq + 2 : end] + b"\0"
        rest = rest[end + 1 :]
    return data


def parse_line(raw: bytes) -> Rule | None:
    """One line of rules text (with or without its newline); None if skipped."""
    if not raw or raw[:1] in (b"#", b"\n"):
        return None
    line = _strip(raw)
    colon = line.find(b":")
    if colon < 0:
        return None
    return Rule(line[:colon], _instruction(line, line[colon + 1 :]))


def iter_lines(text: bytes) -> Iterator[bytes]:
    """getln: each line with its newline; the last one may lack it."""
    start = 0
    while start < len(text):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _number(line: bytes, digits: bytes) -> int:
    # getnum: scan_ulong must take every byte; an empty field is 0.
    if digits and not digits.isdigit():
        raise RulesSyntaxError(line)
    return int(digits) if digits else 0


def expand_address(address: bytes, line: bytes = b"") -> list[bytes]:
    """The cdb keys for an address: itself, or one per number of a range."""
    if b"=" in address or b"@" in address:
        return [address]
    dash = address.find(b"-")
    if dash < 0:
        return [address]
    left = address.rfind(b".", 0, dash) + 1
    right = address.find(b".", dash + 1)
    right = len(address) if right < 0 else right
    bottom = _number(line or address, address[left:dash])
    top = min(_number(line or address, address[dash + 1 : right]), RANGE_TOP)
    head, tail = address[:left], address[right:]
    return [head + str(n).encode() + tail for n in range(bottom, top + 1)]


def compile_rules(text: bytes) -> list[tuple[bytes, bytes]]:
    """Rules text to the (key, data) records tcprules writes, in order."""
    records: list[tuple[bytes, bytes]] = []
    for raw in iter_lines(text):
        rule = parse_line(raw)
        if rule is None:
            continue
        for key in expand_address(rule.address, _strip(raw)):
            records.append((key, rule.data))
    return records


def candidate_keys(ip: str, host: str | None, info: str | None) -> Iterator[str]:
    """The keys rules.c tries, in its order."""
    if info is not None:
        yield f"{info}@{ip}"
        if host is not None:
            yield f"{info}@={host}"
    yield ip
    if host is not None:
        yield f"={host}"
    for i in range(len(ip), 0, -1):
        if ip[i - 1] == ".":
            yield ip[:i]
    if host is not None:
        for i, ch in enumerate(host):
            if ch == ".":
                yield f"={host[i:]}"
        yield "="
    yield ""


@dataclass(frozen=True)
class Decision:
    """What a matching rule says: its key, deny or allow, and the variables it sets."""

    key: str
    deny: bool
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: The raw NUL-terminated entries, for tcprulescheck's report.
    entries: tuple[bytes, ...] = field(default_factory=tuple)


def to_bytes(text: str) -> bytes:
    """Environment strings to bytes the way the OS hands them to Python."""
    return text.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _entries(data: bytes) -> list[bytes]:
    # Only NUL-terminated entries count (tcpserver's and tcprulescheck's found()).
    return data.split(b"\0")[:-1]


def decode(key: str, data: bytes) -> Decision:
    """tcpserver's found(): ``D`` denies; ``+NAME=value`` sets NAME (needs a ``=``)."""
    deny = False
    env: list[tuple[str, str]] = []
    for entry in _entries(data):
        if entry[:1] == b"D":
            deny = True
        elif entry[:1] == b"+" and b"=" in entry:
            name, value = entry[1:].split(b"=", 1)
            env.append((_text(name), _text(value)))
    return Decision(key=key, deny=deny, env=tuple(env), entries=tuple(_entries(data)))


def lookup(reader: Reader, ip: str, host: str | None, info: str | None) -> Decision | None:
    """The first rule that applies, or None when no key matches (allow)."""
    for key in candidate_keys(ip, host, info):
        data = reader.get(to_bytes(key))
        if data is not None:
            return decode(key, data)
    return None


def apply_env(env: dict[str, str], decision: Decision | None) -> None:
    """Set the rule's variables in ``env`` (pathexec_env: later ones win)."""
    if decision is None:
        return
    for name, value in decision.env:
        env[name] = value
