"""A scenario as Python on :mod:`harness.api` (``qmail-sim show --python``).

:func:`to_python` writes one pytest test per scenario: the home configured
with QmailSim's methods (what they do not cover through ``setting``), each
step as the method that plays it, and each ``expect`` as ``expect(...)`` with
the step's checks written back in the scenario format. The result runs as
the scenario does (tests/harness/test_topython.py plays the bundled suite
both ways), so it is a starting point for a test in Python.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from harness.scenario import Scenario
from harness.scenario import model as m
from harness.scenario.values import Match, TranscriptLine, format_duration

INDENT = " " * 8
#: Fields that say where a thing came from, not what it is.
_PLACE = {"line", "kind", "transcript_line", "offset"}


def plain(value: Any) -> Any:
    """A model value as the scenario format writes it (Match as text, dataclasses
    as mappings without their defaults, tuples as lists)."""
    if isinstance(value, Match):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in _PLACE and getattr(value, f.name) != _default(f)
        }
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


_ESCAPED = {b"\\"[0]: "\\\\", b"\r"[0]: "\\r", b"\n"[0]: "\\n", b"\t"[0]: "\\t", 0: "\\0"}


def _raw(data: bytes) -> str:
    """``R:`` text for raw client bytes (harness.scenario.values.unescape's inverse)."""
    out = []
    for byte in data:
        if byte in _ESCAPED:
            out.append(_ESCAPED[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def _plain_line(data: bytes) -> bool:
    """Whether a ``C:`` line says it: printable ASCII, then CRLF."""
    text = data[:-2]
    return data.endswith(b"\r\n") and all(0x20 <= b < 0x7F for b in text)


def format_transcript(lines: tuple[TranscriptLine, ...]) -> str:
    """A transcript as text (harness.scenario.values.parse_transcript's inverse)."""
    out = []
    for line in lines:
        if line.who == "S":
            out.append(f"S: {line.expect}")
        elif line.who == "C" and _plain_line(line.data):
            text = line.data[:-2].decode("ascii")
            out.append(f"C: {text}" if text else "C:")
        else:
            out.append(f"R: {_raw(line.data)}")
    return "".join(f"{x}\n" for x in out)


def _literal(value: Any) -> str:
    """``repr``, except that text of several plain lines is written as its lines."""
    plain_text = (
        isinstance(value, str)
        and value.count("\n") > 1
        and value.endswith("\n")
        and '"""' not in value
        and all(ch == "\n" or " " <= ch <= "~" for ch in value)
        and "\\" not in value
    )
    return f'"""\\\n{value}"""' if plain_text else repr(value)


def _call(method: str, *args: Any, **kwargs: Any) -> str:
    parts = [_literal(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{INDENT}sim.{method}({', '.join(parts)})"


def _user(user: m.User) -> str:
    fields = plain(user)
    fields.pop("name", None)
    if "modes" in fields:
        fields["modes"] = {path: f"{mode:04o}" for path, mode in user.modes.items()}
    return _call("user", user.name, **fields)


def _setup(sc: Scenario) -> list[str]:
    lines = [_user(u) for u in sc.users.values()]
    if sc.assign is not None:
        lines.append(_call("assign", list(sc.assign)))
    lines += [_call("alias", name, text) for name, text in sc.aliases.items()]
    dns = plain(sc.dns)
    if set(dns) - {"zone", "rules"}:
        lines.append(_call("setting", "dns", dns))
    else:
        if sc.dns.zone:
            lines.append(_call("dns_zone", sc.dns.zone))
        for rule in sc.dns.rules:
            fields = plain(rule)
            lines.append(_call("dns_rule", fields.pop("name"), **fields))
    for ip, peer in sc.peers.items():
        script = {
            **plain(peer.script),
            **({"attempts": plain(peer.attempts)} if peer.attempts else {}),
        }
        lines.append(_call("peer", ip, **script))
    settings: dict[str, Any] = {"tcprules": sc.tcprules, "limits": plain(sc.limits) or None}
    if sc.clock_start is not None:
        settings["clock_start"] = (
            f"{sc.clock_start:g}" if sc.clock_start % 1 else str(int(sc.clock_start))
        )
    if sc.paths_outside_workdir:
        settings["paths_outside_workdir"] = True
    settings |= {"tz": sc.tz, "localtime": sc.localtime}
    lines += [_call("setting", k, v) for k, v in settings.items() if v is not None]
    return lines


def _step(step: m.Step) -> str:
    if isinstance(step, m.SessionStep):
        text = format_transcript(step.transcript)
        if step.exit is None and step.host is None:
            return (
                _call(step.kind, text, env=dict(step.env)) if step.env else _call(step.kind, text)
            )
        return _call("step", step.kind, {**plain(step), "transcript": text})
    if isinstance(step, m.InjectStep) and step.stdout is None and step.stderr is None:
        call = _call(
            "inject", step.message, *step.args, **({"env": dict(step.env)} if step.env else {})
        )
        return call if step.exit is None else f"{INDENT}assert {call.strip()}.exit == {step.exit}"
    if isinstance(step, m.AdvanceStep):
        whole = step.seconds % 1 == 0 and step.seconds > 0
        return _call("advance", format_duration(step.seconds) if whole else step.seconds)
    if isinstance(step, m.SignalStep):
        return _call("signal", step.signal)
    if isinstance(step, m.ControlStep):
        return _call("controls", dict(step.files))
    if isinstance(step, m.ExpectStep):
        return _call("expect", **plain(step))
    if isinstance(step, m.RunStep):
        return _call("run")
    return _call("step", step.kind, _step_value(step))


def _step_value(step: m.Step) -> dict[str, Any]:
    """Any other step as its YAML mapping: its fields, an ``exit`` the loader
    would default written out (None there means "not checked")."""
    value: dict[str, Any] = plain(step)
    if getattr(step, "exit", 0) is None:
        value["exit"] = None
    return value


def _test_name(name: str) -> str:
    return "test_" + (re.sub(r"\W+", "_", name.lower()).strip("_") or "scenario")


def to_python(scenarios: list[Scenario]) -> str:
    """A pytest module with one test per scenario."""
    head = [f'"""From {scenarios[0].file if scenarios else "?"} by qmail-sim show --python."""']
    if any(sc.xfail is not None for sc in scenarios):
        head += ["", "import pytest"]
    head += ["", "from harness.api import QmailSim"]
    body: list[str] = []
    names: set[str] = set()
    for sc in scenarios:
        name = _test_name(sc.name)
        while name in names:
            name += "_"
        names.add(name)
        control = dict(sc.control)
        me = control.pop("me") if control.get("me") is not None else None
        args = [f"me={me!r}"]
        args += [f"patches={list(sc.patches)!r}"] if sc.patches else []
        args += [f"controls={control!r}"] if control else []
        args += [f"seed={sc.seed}"] if sc.seed else []
        body += ["", ""]
        if sc.xfail is not None:
            body.append(f"@pytest.mark.xfail(reason={sc.xfail!r}, strict=True)")
        body += [f"def {name}() -> None:", f"    # {sc.name}"]
        body.append(f"    with QmailSim({', '.join(args)}) as sim:")
        body += _setup(sc) + [_step(step) for step in sc.steps]
    return "\n".join(head + body) + "\n"


__all__ = ["format_transcript", "plain", "to_python"]
