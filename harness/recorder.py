"""Turn the bytes of a recorded SMTP or POP3 session into a scenario transcript.

:class:`Recorder` is fed what the client sent (:meth:`Recorder.client`) and
what the server sent (:meth:`Recorder.server`) in the order they were seen,
in chunks of any size. It splits the client's bytes into lines (``C: text``
for a CRLF line of printable text, ``R: …`` with escapes for anything else,
e.g. a bare LF) and the server's into CRLF lines (``S: text``), and it
follows the protocol (:class:`Replies`) to know which reply answers which
command, so that:

- the volatile parts of a reply become ``S: ~ regex`` lines (:func:`volatile`):
  qmail-smtpd's ``250 ok 1700000000 qp 1234`` (qmail-smtpd.c acceptmessage),
  qmail-popup's ``+OK <pid.time@host>`` banner (qmail-popup.c), message
  sizes in POP3 STAT/LIST and unique names in UIDL (qmail-pop3d.c), and the
  times, pids and qp numbers in ``Received:``/``Date:``/``Message-ID:``
  headers of a RETR/TOP;
- a driver reading client lines from stdin knows whether a reply is still
  owed (:attr:`Replies.waiting`) before it sends the next line.

:func:`scenario_text` writes the scenario file. Its transcript is a YAML
block scalar written by hand: PyYAML will not write one that holds trailing
spaces, and qmail-popup's ``+OK `` has one.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

Protocol = Literal["smtp", "pop3"]

_QP = re.compile(r"250 ok \d+ qp \d+")
_BANNER = re.compile(r"\+OK <\d+\.\d+@(.*)>")
_SMTP_FINAL = re.compile(r"\d{3}(?: .*)?")
_VOLATILE_HEADERS = ("received:", "date:", "message-id:")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
#: POP3 commands whose +OK reply is a multi-line response ending in "." (RFC 1939)
_MULTILINE = {"RETR", "TOP"}
_MULTILINE_NO_ARG = {"LIST", "UIDL"}


def _re_char(ch: str) -> str:
    if (ch.isascii() and ch.isalnum()) or ch in " _-@<>:,;/'\"=%&!#":
        return ch
    if 0x20 <= ord(ch) <= 0x7E:
        return "\\" + ch
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else re.escape(ch)


def _re_text(text: str) -> str:
    return "".join(_re_char(ch) for ch in text)


def exact(line: str) -> str:
    """A regex matching exactly ``line`` (used where text alone would be misread)."""
    return "~ ^" + _re_text(line) + "$"


def digits_pattern(line: str) -> str:
    """``line`` with every run of digits allowed to change."""
    return "~ ^" + r"\d+".join(_re_text(p) for p in re.split(r"\d+", line)) + "$"


@dataclass
class _Pending:
    command: str  # upper-case verb ("" for the greeting)
    has_arg: bool
    multiline: bool = False
    in_headers: bool = True
    header_volatile: bool = False


@dataclass
class Replies:
    """Which reply the server owes, for one protocol.

    SMTP: a reply to the greeting and to each command line, none to the
    lines between ``354`` and the final ``.``; a reply ends at a line whose
    fourth character is not ``-`` (RFC 5321 4.2.1). POP3: one ``+OK``/``-ERR``
    line per command, followed for RETR, TOP and argument-less LIST/UIDL by
    lines up to a lone ``.``.
    """

    protocol: Protocol
    owed: deque[_Pending] = field(default_factory=deque)
    in_data: bool = False
    data_requested: bool = False
    closed: bool = False

    def __post_init__(self) -> None:
        self.owed.append(_Pending(command="", has_arg=False))

    @property
    def waiting(self) -> bool:
        return bool(self.owed) and not self.closed

    def client_line(self, line: str) -> None:
        if self.protocol == "smtp" and self.in_data:
            if line == ".":
                self.in_data = False
                self.owed.append(_Pending(command=".", has_arg=False))
            return
        verb, _, arg = line.strip().partition(" ")
        self.owed.append(_Pending(command=verb.upper(), has_arg=bool(arg.strip())))

    def server_line(self, line: str) -> _Pending | None:
        """Account for one server line; returns the command it answers (None: unasked)."""
        if not self.owed:
            return None
        pending = self.owed[0]
        if self.protocol == "smtp":
            if _SMTP_FINAL.fullmatch(line) or len(line) < 4:
                self.owed.popleft()
                if pending.command == "DATA" and line.startswith("354"):
                    self.in_data = True
            return pending
        return self._pop3_line(pending, line)

    def _pop3_line(self, pending: _Pending, line: str) -> _Pending:
        if not pending.multiline:
            if line.startswith("+OK") and (
                pending.command in _MULTILINE
                or (pending.command in _MULTILINE_NO_ARG and not pending.has_arg)
            ):
                pending.multiline = True
            else:
                self.owed.popleft()
            return pending
        if line == ".":
            self.owed.popleft()
        return pending


def volatile(protocol: Protocol, line: str, answers: _Pending | None, first: bool) -> str:
    """The ``S:`` text for ``line``: itself, or a ``~ regex`` for what changes per run.

    ``answers`` is the command the line answers, ``first`` whether it is the
    reply's first line.
    """
    if protocol == "smtp":
        return r"~ ^250 ok \d+ qp \d+$" if _QP.fullmatch(line) else line
    command = answers.command if answers else ""
    if command == "" and (m := _BANNER.fullmatch(line)):
        return r"~ ^\+OK <\d+\.\d+@" + _re_text(m[1]) + ">$"
    if command in ("STAT", "LIST") and re.fullmatch(r"(\+OK )?\d+ \d+", line):
        head, _, _size = line.rpartition(" ")
        return "~ ^" + _re_text(head) + r" \d+$"
    if command == "UIDL" and re.fullmatch(r"(\+OK )?\d+ \S+", line):
        head, _, _name = line.rpartition(" ")
        return "~ ^" + _re_text(head) + r" \S+$"
    if answers is not None and answers.multiline and not first:
        return _content_line(answers, line)
    return line


def _content_line(pending: _Pending, line: str) -> str:
    """A line of a RETR/TOP: header lines that name times, pids and qp numbers vary."""
    if not pending.in_headers:
        return line
    if line == "":
        pending.in_headers = False
        return line
    if line[:1] in (" ", "\t"):
        volatile_line = pending.header_volatile
    else:
        pending.header_volatile = line.lower().startswith(_VOLATILE_HEADERS)
        volatile_line = pending.header_volatile
    return digits_pattern(line) if volatile_line and re.search(r"\d", line) else line


def client_entry(line: bytes) -> str:
    """``C: text`` for a printable CRLF line, else ``R:`` with escapes."""
    if line.endswith(b"\r\n"):
        body = line[:-2]
        text = body.decode("latin-1")
        if _PRINTABLE.fullmatch(text) and b"\r" not in body:
            return f"C: {text}" if text else "C:"
    return "R: " + escape(line)


def escape(data: bytes) -> str:
    out = []
    for byte in data:
        ch = chr(byte)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif 0x20 <= byte <= 0x7E:
            out.append(ch)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def server_entry(line: str) -> str:
    """``S: line``, or an exact pattern where the text itself would be misread
    (a leading ``~``, bytes that are not printable ASCII)."""
    if not _PRINTABLE.fullmatch(line) or line.startswith("~"):
        return "S: " + exact(line)
    return f"S: {line}" if line else "S:"


class Recorder:
    """Collects a session's transcript lines; see the module docstring."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.replies = Replies(protocol)
        self.entries: list[str] = []
        self._client = b""
        self._server = b""
        self._reply_start = True

    def client(self, data: bytes) -> None:
        self._client += data
        while (end := self._client.find(b"\n")) >= 0:
            line, self._client = self._client[: end + 1], self._client[end + 1 :]
            self.entries.append(client_entry(line))
            self.replies.client_line(line.decode("latin-1").rstrip("\r\n"))

    def server(self, data: bytes) -> None:
        self._server += data
        while (end := self._server.find(b"\r\n")) >= 0:
            line, self._server = self._server[:end], self._server[end + 2 :]
            self._server_line(line.decode("latin-1"))

    def _server_line(self, line: str) -> None:
        answers = self.replies.server_line(line)
        text = volatile(self.protocol, line, answers, self._reply_start)
        self.entries.append(server_entry(line) if text == line else f"S: {text}")
        self._reply_start = (
            answers is None or not self.replies.owed or (self.replies.owed[0] is not answers)
        )

    def close(self) -> None:
        """The connection ended: whatever is left over is a partial line."""
        if self._client:
            self.entries.append("R: " + escape(self._client))
            self._client = b""
        if self._server:
            # session.server_lines() shows a line without CRLF this way
            self.entries.append(server_entry(self._server.decode("latin-1") + " <no CRLF>"))
            self._server = b""
        self.replies.closed = True

    def transcript(self) -> str:
        return "".join(f"{e}\n" for e in self.entries)


@dataclass(kw_only=True)
class World:
    """What the scenario needs besides the session: the target home's setup."""

    control: dict[str, str | list[str]] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    patches: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _block(text: str, indent: int) -> str:
    pad = " " * indent
    return "".join(f"{pad}{line}\n" if line else "\n" for line in text.splitlines())


def scenario_text(
    *,
    name: str,
    protocol: Protocol,
    transcript: str,
    env: Mapping[str, str | None],
    world: World,
    host: str | None = None,
    exit_code: int | None = None,
) -> str:
    """The scenario file: a header dumped by PyYAML, the session step written by hand."""
    head: dict[str, Any] = {"name": name, "tags": ["recorded", protocol]}
    if world.include:
        head["include"] = world.include
    if world.patches:
        head["patches"] = world.patches
    if world.control:
        head["control"] = world.control
    if world.users:
        head["users"] = world.users
    out = "".join(f"# {note}\n" for note in world.notes)
    out += yaml.safe_dump(head, sort_keys=False, width=100, allow_unicode=True)
    step: dict[str, Any] = {}
    if env:
        step["env"] = dict(env)
    if host is not None:
        step["host"] = host
    if exit_code is not None:
        step["exit"] = exit_code
    out += f"steps:\n  - {protocol}:\n"
    if step:
        out += _block(yaml.safe_dump(step, sort_keys=False, width=100), 6)
    out += "      transcript: |\n" + _block(transcript, 8)
    return out
