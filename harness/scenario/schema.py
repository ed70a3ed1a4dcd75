"""The scenario schema, as data: every key a scenario may hold, and its type.

docs/scenarios.md documents the same keys for people. ``SCENARIO`` is the
top level; ``FRAGMENT`` the same keys all optional, for ``include:``-d fixture
files. Builders turn checked values into the frozen classes of model.py.
"""

from __future__ import annotations

import re
from dataclasses import fields as dc_fields
from dataclasses import replace
from typing import Any

from harness.scenario import model as m
from harness.scenario.dsl import Either, Field, MapOf, Scalar, Schema, Seq, Struct, Tagged
from harness.scenario.values import (
    Match,
    parse_duration,
    parse_instant,
    parse_match,
    parse_transcript,
)
from server.programs import PATCHES

STR = Scalar("str")
INT = Scalar("int")
BOOL = Scalar("bool")
NULL = Scalar("null")
DURATION = Either(
    (Scalar("number"), Scalar("str", parse=parse_duration, what="a duration")),
    what="a duration (90s, 2h, 8d)",
)
MATCH = Scalar("str", parse=parse_match, what="text or '~ regex'")


def _lines(value: Any) -> str:
    """A string as is, or a list of lines joined with newlines (a trailing one added)."""
    if isinstance(value, str):
        return value
    return "".join(f"{line}\n" for line in value)


TEXT = Either((STR, Seq(STR)), what="a string or a list of lines")
TEXT_OR_NULL = Either((NULL, STR, Seq(STR)), what="a string, a list of lines, or null")
STRS = Either((Scalar("str", parse=lambda s: (s,)), Seq(STR)), what="a string or a list")
MATCHES = Either(
    (Scalar("str", parse=lambda s: (parse_match(s),), what="text"), Seq(MATCH)),
    what="text or a list of texts ('~ regex' for a regular expression)",
)


def _struct(cls: type, spec: dict[str, Schema | Field], **renames: str) -> Struct:
    """A Struct whose values become ``cls(**values)`` (plus ``line`` if it has one)."""
    names = {f.name for f in dc_fields(cls)}

    def build(values: dict[str, Any], line: int, _lines: dict[str, int]) -> Any:
        kwargs = {renames.get(k, k): v for k, v in values.items()}
        if "line" in names:
            kwargs["line"] = line
        return cls(**kwargs)

    flds = {k: v if isinstance(v, Field) else Field(v) for k, v in spec.items()}
    return Struct(flds, build)


_FILE_NAME = re.compile(r"[A-Za-z0-9_+=.:-]+")


def _file_name(name: str) -> str:
    """A control or alias file name: one path component, so nothing lands outside the home."""
    if not _FILE_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError("a file name here is one plain path component")
    return name


#: The top-level key by which a scenario lets its own paths leave its work
#: directory (harness/scenario/dsl.py, Confine). Only a scenario may say it,
#: not a fixture it includes.
OUTSIDE_KEY = "paths_outside_workdir"


def _path(text: str) -> str:
    """A path the harness makes or reads: any text a file name can hold."""
    if "\0" in text:
        raise ValueError("a path cannot hold a NUL byte")
    if not text:
        raise ValueError("an empty path")
    return text


def _outside(path: str) -> str | None:
    """Why ``path`` (relative to a directory of the run) leaves it, or None."""
    if path.startswith("/"):
        return f"{path!r} is an absolute path, outside the work directory"
    if ".." in path.split("/"):
        return f"{path!r} climbs out with '..'"
    return None


def _outside_home_path(key: str) -> str | None:
    """``expect.files`` keys: under the qmail home, or ``~user/…`` under a user's home."""
    if not key.startswith("~"):
        return _outside(key)
    user, _, rest = key[1:].partition("/")
    if not _FILE_NAME.fullmatch(user) or user in (".", ".."):
        return f"{key!r}: {'~' + user!r} is not a user name"
    return _outside(rest) if rest else None


_WORKDIR = "{workdir}"


def _outside_assign(line: str) -> str | None:
    """An ``assign`` line's home (qmail-users(5): the fifth field) is ``{workdir}/…``."""
    fields = line.split(":")
    if line[:1] not in ("=", "+") or len(fields) < 5:
        return None  # not an entry: qmail-newu says what is wrong with it
    home = fields[4]
    if home != _WORKDIR and not home.startswith(_WORKDIR + "/"):
        return f"the home {home!r} is not under {_WORKDIR}/, the work directory"
    return _outside(home[len(_WORKDIR) :].lstrip("/") or ".")


def _outside_assign_lines(lines: tuple[str, ...]) -> str | None:
    return next((r for r in map(_outside_assign, lines) if r is not None), None)


def _control_value(name: str, value: Any) -> str | None:
    _file_name(name)
    return None if value is None else _lines(value)


CONTROL = MapOf(TEXT_OR_NULL, build_item=_control_value)

# -- users, aliases, DNS, peers -------------------------------------------------

_DOTQMAIL_KEY = re.compile(r"(-[^/\0]*)?")


def _dotqmail_item(key: str, value: Any) -> str:
    if not _DOTQMAIL_KEY.fullmatch(key):
        raise ValueError("a .qmail key is '' (for .qmail) or '-ext' (for .qmail-ext)")
    return _lines(value)


_MODE = re.compile(r"0?[0-7]{3}")
#: the text as written, so a bare 0400 and a quoted "0400" mean the same
_MODE_WHAT = "an octal mode such as 0644"


def _mode(value: str) -> int:
    """Permission bits as chmod takes them: three or four octal digits."""
    if not _MODE.fullmatch(value):
        raise ValueError(f"{value!r} is not an octal mode such as 0644 (as chmod takes it)")
    return int(value, 8)


def _build_user(name: str, values: dict[str, Any]) -> m.User:
    values = {k: v for k, v in values.items() if not k.startswith("__")}
    return m.User(name=_file_name(name), **values)


_FLAGS = re.compile(r"[A-Za-z]*")


def _flags(text: str) -> str:
    if not _FLAGS.fullmatch(text):
        raise ValueError(f"{text!r}: Maildir flags are letters, such as S or RS (maildir(5))")
    return text


MAILDIR_MESSAGE = _struct(
    m.MaildirMessage,
    {
        "text": Field(STR, required=True),
        "name": Scalar("str", parse=_file_name, what="a file name"),
        "flags": Scalar("str", parse=_flags, what="Maildir flags"),
        "date": Scalar("str", parse=parse_instant, what="an instant (ISO 8601 or epoch)"),
    },
)

USER = Struct(
    {
        "home": Field(
            Scalar("str", parse=_path, confine=_outside),
            doc="home directory, relative to the scenario's work dir",
        ),
        "dotqmail": Field(MapOf(TEXT, build_item=_dotqmail_item)),
        "maildir": Field(BOOL),
        "mbox": Field(Scalar("str", parse=_path, confine=_outside)),  # in the home
        "password": Field(STR),
        "modes": Field(
            MapOf(Scalar("str", parse=_mode, what=_MODE_WHAT), confine_keys=_outside),
            doc="permission bits (octal) of paths in the home, '.' for the home itself",
        ),
        "messages": Field(Seq(MAILDIR_MESSAGE), doc="messages put into ~/Maildir first"),
    }
)


def _check_zone_lines(value: Any) -> tuple[str, ...]:
    from dnslib import RR  # imported here: loading a scenario without DNS stays cheap

    lines = (value,) if isinstance(value, str) else tuple(value)
    for line in lines:
        try:
            if not RR.fromZone(line):
                raise ValueError
        except Exception:  # dnslib raises many kinds; all mean "not a record"
            raise ValueError(f"not a zone-file record: {line!r}") from None
    return lines


def _check_zone(text: str) -> str:
    from dnslib import RR

    try:
        RR.fromZone(text)
    except Exception as exc:  # dnslib's parser raises assorted errors
        raise ValueError(f"zone does not parse: {exc}") from None
    return text


def _rr_type(text: str) -> str:
    from dnslib import QTYPE

    name = text.upper()
    if name != "*" and name not in QTYPE.reverse:
        raise ValueError(f"{text!r} is not a record type (A, MX, CNAME, TXT, ANY, … or *)")
    return name


DNS_RULE = _struct(
    m.DnsRule,
    {
        "name": Field(Scalar("str", parse=lambda s: s.rstrip(".").lower()), required=True),
        "type": Scalar("str", parse=lambda s: _rr_type(s)),
        "rcode": Scalar("str", choices=m.RCODES),
        "timeout": BOOL,
        "pad_to": INT,
        "tc": BOOL,
        "minimal_any": BOOL,
        "malformed": Scalar("str", choices=m.MALFORMED),
        "answer": Either(
            (Scalar("str", parse=_check_zone_lines), Seq(STR, build=_check_zone_lines))
        ),
        "times": INT,
        "after": DURATION,
        "until": DURATION,
        "server": STR,
    },
)
DNS = _struct(
    m.DnsSpec,
    {
        "zone": Scalar("str", parse=_check_zone, what="zone-file text"),
        "servers": Seq(STR),
        "resolv_conf": Seq(STR),
        "rules": Seq(DNS_RULE),
    },
)


def _stage_delay(stage: str, seconds: Any) -> float:
    if stage not in m.PEER_STAGES[1:]:
        raise ValueError(f"not a stage (one of {', '.join(m.PEER_STAGES[1:])})")
    return float(seconds)


_REPLY = Either((STR, Seq(STR, build=lambda xs: "\n".join(xs))), what="a reply or list of lines")
_STAGE = Scalar("str", choices=m.PEER_STAGES)
_PEER_FIELDS: dict[str, Schema] = {
    "greeting": _REPLY,
    "helo": _REPLY,
    "ehlo": _REPLY,
    "mail": _REPLY,
    # one reply for every recipient (a string, or a list of lines), or per address
    "rcpt": Either(
        (
            Scalar("str", parse=lambda s: {"*": s}),
            Seq(STR, build=lambda xs: {"*": "\n".join(xs)}),
            MapOf(_REPLY),
        ),
        what="a reply, a list of lines, or a mapping address -> reply",
    ),
    "data": _REPLY,
    "end": _REPLY,
    "quit": _REPLY,
    "rset": _REPLY,
    "refuse": BOOL,
    "timeout": _STAGE,
    "drop": _STAGE,
    "delay": MapOf(DURATION, build_item=lambda stage, secs: _stage_delay(stage, secs)),
}


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not k.startswith("__")}


def _build_peer(ip: str, values: dict[str, Any]) -> m.PeerSpec:
    values = _clean(values)
    attempts = values.pop("attempts", ())
    values.pop("accept", None)  # "accept: all" is the default script, said out loud
    base = m.PeerScript(**values)
    return m.PeerSpec(
        ip=ip, script=base, attempts=tuple(replace(base, **_clean(a)) for a in attempts)
    )


PEER = Struct(
    {
        **{k: Field(v) for k, v in _PEER_FIELDS.items()},
        "accept": Field(Scalar("str", choices=("all",))),
        "attempts": Field(Seq(Struct({k: Field(v) for k, v in _PEER_FIELDS.items()}))),
    }
)

LIMITS = _struct(m.Limits, {"virtual": DURATION, "wall": DURATION, "passes": INT})

# -- steps -----------------------------------------------------------------------

ENV = MapOf(Either((NULL, STR), what="a string or null"))


def _session(kind: str) -> Struct:
    def build(values: dict[str, Any], line: int, lines: dict[str, int]) -> m.SessionStep:
        return m.SessionStep(
            kind=kind,  # type: ignore[arg-type]
            transcript_line=lines.get("transcript", line),
            line=line,
            **values,
        )

    return Struct(
        {
            "env": Field(ENV),
            "transcript": Field(
                Scalar("str", parse=parse_transcript, what="a transcript"), required=True
            ),
            "exit": Field(INT),
            "host": Field(STR),
        },
        build,
    )


INJECT = _struct(
    m.InjectStep,
    {
        "args": Either((Scalar("str", parse=lambda s: tuple(s.split())), Seq(STR))),
        "env": ENV,
        "message": Field(STR, required=True),
        "exit": Either((NULL, INT)),
        "stdout": Seq(MATCH),
        "stderr": Seq(MATCH),
    },
)


def _program_name(args: tuple[str, ...]) -> tuple[str, ...]:
    """``run_program``'s argv: its first word names a program of the home's bin/."""
    from server.programs import PROGRAMS

    if not args:
        raise ValueError("run_program needs the program's name")
    if args[0] not in PROGRAMS:
        raise ValueError(f"{args[0]!r} is not a program of a qmail home's bin/")
    return args


_ARGV = Either(
    (
        Scalar("str", parse=lambda s: _program_name(tuple(s.split()))),
        Seq(STR, build=lambda xs: _program_name(tuple(xs))),
    ),
    what="a program's name and arguments (a string or a list)",
)
PROGRAM = Either(
    (
        *_ARGV.options,
        _struct(
            m.ProgramStep,
            {
                "args": Field(_ARGV, required=True),
                "env": ENV,
                "stdin": STR,
                "exit": Either((NULL, INT)),
                "stdout": Seq(MATCH),
                "stderr": Seq(MATCH),
            },
        ),
    )
)
RUN = Either(
    (
        Scalar("str", choices=("idle",)),
        Struct({"until": Field(Scalar("str", choices=("idle",)), required=True)}),
    )
)


def _signal(text: str) -> str:
    name = text.lower().removeprefix("sig")
    if name not in ("alrm", "hup", "term"):
        raise ValueError(f"{text!r} is not a signal qmail-send handles (alrm, hup, term)")
    return name


def _mailbox_item(_name: str, value: Any) -> m.MailboxExpect:
    if isinstance(value, int):
        return m.MailboxExpect(count=value)
    assert isinstance(value, m.MailboxExpect)
    return value


MAILBOX = Either(
    (
        INT,
        _struct(
            m.MailboxExpect,
            {
                "count": INT,
                "headers": MapOf(MATCH),
                "body_contains": STRS,
                "filename_re": STR,
                "from_line": MATCH,
            },
        ),
    )
)


def _next_retry(value: Any) -> Any:
    return "none" if value is None or value == "none" else value


QUEUE = _struct(
    m.QueueExpect,
    {
        "messages": INT,
        "recipients": MapOf(Scalar("str", choices=("todo", "pending", "done"))),
        "next_retry": Either(
            (
                NULL,
                Scalar("number"),
                Scalar("str", parse=lambda s: _next_retry(s if s == "none" else parse_duration(s))),
            )
        ),
    },
)
BOUNCES = Either((INT, _struct(m.BouncesExpect, {"count": INT, "to": STR, "body_contains": STRS})))
DNS_QUERIES = Either(
    (Seq(STR), _struct(m.DnsQueryExpect, {"seen": Seq(STR), "not_seen": Seq(STR), "count": INT}))
)
PEER_EXPECT = _struct(
    m.PeerExpect,
    {
        "connections": INT,
        "messages": INT,
        "rcpt": STRS,
        "mail_from": STR,
        "helo": MATCH,
        "data_contains": STRS,
    },
)
FILE_EXPECT = _struct(m.FileExpect, {"exists": BOOL, "contains": STRS, "equals": STR})


def _build_expect(values: dict[str, Any], line: int, _lines: dict[str, int]) -> m.ExpectStep:
    if isinstance(values.get("bounces"), int):
        values["bounces"] = m.BouncesExpect(count=values["bounces"])
    if isinstance(values.get("dns_queries"), tuple):
        values["dns_queries"] = m.DnsQueryExpect(seen=values["dns_queries"])
    if "queue" in values and values["queue"].next_retry is not None:
        values["queue"] = replace(
            values["queue"], next_retry=_next_retry(values["queue"].next_retry)
        )
    return m.ExpectStep(line=line, **values)


EXPECT = Struct(
    {
        "queue": Field(QUEUE),
        # a user, "alias", or a path under the work directory
        "maildir": Field(MapOf(MAILBOX, build_item=_mailbox_item, confine_keys=_outside)),
        "mbox": Field(MapOf(MAILBOX, build_item=_mailbox_item, confine_keys=_outside)),
        "bounces": Field(BOUNCES),
        "log": Field(MATCHES),
        "log_absent": Field(MATCHES),
        "log_unordered": Field(MATCHES),
        "dns_queries": Field(DNS_QUERIES),
        "peers": Field(MapOf(PEER_EXPECT)),
        "files": Field(MapOf(FILE_EXPECT, confine_keys=_outside_home_path)),
    },
    _build_expect,
)


def _build_step(kind: str, value: Any, line: int) -> m.Step:
    if kind == "run_program" and isinstance(value, tuple):
        return m.ProgramStep(args=value, line=line)
    if kind in ("smtp", "pop3", "expect", "inject", "run_program"):
        step: m.Step = replace(value, line=line)  # the "- kind:" line, not its body's
        return step
    if kind == "run":
        return m.RunStep(line=line)
    if kind == "advance":
        return m.AdvanceStep(seconds=float(value), line=line)
    if kind == "signal":
        return m.SignalStep(signal=value, line=line)
    if kind in ("qmtp", "qmqp"):
        session: m.Step = replace(value, line=line)  # the "- kind:" line, as for smtp
        return session
    return m.ControlStep(files=value, line=line)


STEP = Tagged(
    {
        "smtp": _session("smtp"),
        "pop3": _session("pop3"),
        "qmtp": _session("qmtp"),
        "qmqp": _session("qmqp"),
        "inject": INJECT,
        "run_program": PROGRAM,
        "run": RUN,
        "advance": DURATION,
        "signal": Scalar("str", parse=_signal, what="alrm, hup or term"),
        "control": CONTROL,
        "expect": EXPECT,
    },
    _build_step,
)

# -- top level ---------------------------------------------------------------------


def _zone_name(text: str) -> str:
    from harness.targets.zone import zone_file

    zone_file(text)  # ValueError: no such zone
    return text


_TOP: dict[str, Schema] = {
    "include": STRS,
    "name": STR,
    "tags": STRS,
    "xfail": STR,
    "control": CONTROL,
    "patches": Seq(Scalar("str", choices=PATCHES)),
    "users": MapOf(USER, build_item=_build_user),
    "assign": Either(
        (
            Scalar("str", parse=lambda s: tuple(s.splitlines()), confine=_outside_assign_lines),
            Seq(Scalar("str", confine=_outside_assign)),
        )
    ),
    "aliases": MapOf(TEXT, build_item=lambda k, v: _file_name(k) and _lines(v)),
    "tcprules": TEXT,
    "dns": DNS,
    "peers": MapOf(PEER, build_item=_build_peer),
    "seed": INT,
    "limits": LIMITS,
    "steps": Seq(STEP),
    "clock_start": Scalar("str", parse=parse_instant, what="an instant (ISO 8601 or epoch)"),
    OUTSIDE_KEY: BOOL,
    "tz": STR,
    "localtime": Scalar("str", parse=_zone_name, what="a zone name under /usr/share/zoneinfo"),
}
SCENARIO = Struct(
    {k: Field(v, required=k in ("name", "steps")) for k, v in _TOP.items()},
    what="a scenario (a mapping with name and steps)",
)
FRAGMENT = Struct(
    {k: Field(v) for k, v in _TOP.items() if k != OUTSIDE_KEY}, what="a fixture (a mapping)"
)


def build_scenario(values: dict[str, Any], file: str) -> m.Scenario:
    line = values.get("__line__", 1)
    values = _clean(values)
    if "tcprules" in values:
        values["tcprules"] = _lines(values["tcprules"])
    return m.Scenario(file=file, line=line, **values)


__all__ = ["FRAGMENT", "OUTSIDE_KEY", "SCENARIO", "Match", "build_scenario"]
