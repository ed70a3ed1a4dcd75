"""A tiny schema language, so the scenario schema can be written down as data.

Each schema object says what YAML node it accepts and how to turn the checked
value into a model object (``build``). The loader (loader.py) walks the YAML
node tree against it, and every mistake it finds names the file, the line and
the dotted key path (``steps[2].smtp.transcript``).

- :class:`Scalar` — a string/int/bool/number/null, optionally ``parse``-d.
- :class:`Seq` — a list of one schema.
- :class:`MapOf` — a mapping with free string keys (user names, IPs).
- :class:`Struct` — a mapping with known keys; unknown keys are errors.
- :class:`Either` — the first option whose node kind (scalar, list, mapping) fits.
- :class:`Tagged` — a one-key mapping whose key picks the schema (a step).

A :data:`Confine` function marks a value (``Scalar.confine``) or the keys of
a mapping (``MapOf.confine_keys``) as paths the harness itself reads or makes:
it returns why the path leaves the scenario's work directory, or None. The
loader turns a reason into an error unless the scenario opts in
(``paths_outside_workdir: true``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ScalarKind = Literal["str", "int", "bool", "number", "null"]
#: A path check: why ``value`` points outside the work directory, or None.
Confine = Callable[[Any], str | None]


@dataclass(frozen=True)
class Scalar:
    kind: ScalarKind = "str"
    parse: Callable[[Any], Any] | None = None
    what: str = ""
    choices: tuple[str, ...] = ()
    confine: Confine | None = None  # checked on the parsed value

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return (
            self.what
            or {
                "str": "a string",
                "int": "an integer",
                "bool": "true or false",
                "number": "a number",
                "null": "null",
            }[self.kind]
        )


@dataclass(frozen=True)
class Seq:
    item: Schema
    build: Callable[[list[Any]], Any] = tuple

    def describe(self) -> str:
        return "a list"


@dataclass(frozen=True)
class MapOf:
    value: Schema
    build_item: Callable[[str, Any], Any] | None = None
    confine_keys: Confine | None = None

    def describe(self) -> str:
        return "a mapping"


@dataclass(frozen=True)
class Field:
    schema: Schema
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Struct:
    fields: Mapping[str, Field]
    #: build(values, line, field_lines) -> model object; None keeps the dict.
    build: Callable[[dict[str, Any], int, dict[str, int]], Any] | None = None
    what: str = "a mapping"

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Either:
    options: tuple[Schema, ...]
    what: str = ""

    def describe(self) -> str:
        return self.what or " or ".join(o.describe() for o in self.options)


@dataclass(frozen=True)
class Tagged:
    options: Mapping[str, Schema]
    build: Callable[[str, Any, int], Any] = field(default=lambda k, v, line: (k, v, line))

    def describe(self) -> str:
        return "a mapping with one key: " + ", ".join(self.options)


Schema = Scalar | Seq | MapOf | Struct | Either | Tagged


def node_kind(schema: Schema) -> str:
    """Which YAML node kind a schema accepts: scalar, sequence or mapping."""
    if isinstance(schema, Scalar):
        return "scalar"
    if isinstance(schema, Seq):
        return "sequence"
    if isinstance(schema, Either):
        raise TypeError("nested Either")
    return "mapping"
