"""Read scenario files: YAML node tree + schema → :class:`Scenario`, or a ScenarioError.

``yaml.compose_all`` gives nodes that keep their line numbers; we walk them
against the schema in schema.py instead of using ``safe_load``, so every error
can name the file, the line and the key, and unknown keys are rejected.

A file holds one scenario (a mapping), several (a list of mappings), or several
YAML documents. ``include:`` names fixture files (searched next to the
scenario, then in the checkout's ``fixtures/``) whose keys are defaults that
the scenario's own keys extend: mappings merge, lists append, scalars are
overridden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.scenario.dsl import Either, MapOf, Scalar, Schema, Seq, Struct, Tagged, node_kind
from harness.scenario.errors import ScenarioError
from harness.scenario.model import Scenario
from harness.scenario.schema import FRAGMENT, SCENARIO, build_scenario

#: The checkout's fixtures/, and the copy installed with the package.
FIXTURES_DIRS = (
    Path(__file__).resolve().parents[2] / "fixtures",
    Path(__file__).resolve().parents[1] / "data" / "fixtures",
)
_MAX_DEPTH = 64
_KIND_NAMES = {ScalarNode: "a scalar", SequenceNode: "a list", MappingNode: "a mapping"}
_constructor = yaml.constructor.SafeConstructor()


def node_kind_of(schema: Schema) -> str:
    if isinstance(schema, Either):
        kinds = {node_kind(o) for o in schema.options}
        return kinds.pop() if len(kinds) == 1 else "mixed"
    return node_kind(schema)


def content_line(node: Node) -> int:
    """1-based line of a node's content (a block scalar starts below its ``|``)."""
    line: int = node.start_mark.line + 1
    if isinstance(node, ScalarNode) and node.style in ("|", ">"):
        line += 1
    return line


class _Walker:
    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, node: Node, key: str, message: str, line: int | None = None) -> ScenarioError:
        return ScenarioError(message, file=self.file, line=line or content_line(node), key=key)

    def walk(self, node: Node, schema: Schema, key: str, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise self.error(node, key, "nested too deeply (a recursive alias?)")
        if isinstance(schema, Either):
            return self._either(node, schema, key, depth)
        if isinstance(schema, Scalar):
            return self._scalar(node, schema, key)
        if isinstance(schema, Seq):
            if not isinstance(node, SequenceNode):
                raise self._wrong(node, schema, key)
            items = [
                self.walk(n, schema.item, f"{key}[{i}]", depth + 1)
                for i, n in enumerate(node.value)
            ]
            return schema.build(items)
        if not isinstance(node, MappingNode):
            raise self._wrong(node, schema, key)
        if isinstance(schema, MapOf):
            return self._mapof(node, schema, key, depth)
        if isinstance(schema, Struct):
            return self._struct(node, schema, key, depth)
        return self._tagged(node, schema, key, depth)

    def _wrong(self, node: Node, schema: Schema, key: str) -> ScenarioError:
        got = _KIND_NAMES.get(type(node), "something else")
        hint = ""
        if isinstance(node, MappingNode) and node_kind_of(schema) == "scalar":
            hint = " (a text holding ': ' must be quoted)"
        return self.error(node, key, f"expected {schema.describe()}, got {got}{hint}")

    def _either(self, node: Node, schema: Either, key: str, depth: int) -> Any:
        wanted = {ScalarNode: "scalar", SequenceNode: "sequence", MappingNode: "mapping"}
        kind = wanted.get(type(node))
        fits = [o for o in schema.options if node_kind(o) == kind]
        if not fits:
            raise self._wrong(node, schema, key)
        last: ScenarioError | None = None
        for option in fits:
            try:
                return self.walk(node, option, key, depth)
            except ScenarioError as exc:
                last = exc
        assert last is not None
        if len(fits) > 1:
            raise self.error(node, key, f"expected {schema.describe()}") from None
        raise last

    def _scalar(self, node: Node, schema: Scalar, key: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self._wrong(node, schema, key)
        value = self._scalar_value(node, schema, key)
        if schema.choices and value not in schema.choices:
            raise self.error(node, key, f"{value!r} is not {schema.describe()}")
        if schema.parse is None:
            return value
        try:
            return schema.parse(value)
        except ValueError as exc:
            offset = getattr(exc, "offset", None)
            line = content_line(node) + offset if isinstance(offset, int) else None
            raise self.error(node, key, str(exc), line) from None

    def _scalar_value(self, node: ScalarNode, schema: Scalar, key: str) -> Any:
        tag = node.tag.rsplit(":", 1)[-1]
        if schema.kind == "str":
            if tag == "null":
                raise self.error(node, key, f"expected {schema.describe()}, got null")
            return node.value  # the text as written: control files want it verbatim
        if schema.kind == "null" and tag == "null":
            return None
        want = {"int": ("int",), "bool": ("bool",), "number": ("int", "float")}
        if tag in want.get(schema.kind, ()):
            try:
                return _constructor.construct_object(node)
            except (ValueError, yaml.YAMLError):
                pass
        raise self.error(node, key, f"expected {schema.describe()}, got {node.value!r}")

    def _pairs(self, node: MappingNode, key: str) -> list[tuple[str, Node, Node]]:
        seen: set[str] = set()
        pairs: list[tuple[str, Node, Node]] = []
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode):
                raise self.error(knode, key, "mapping keys must be plain strings")
            name = str(knode.value)
            if name in seen:
                raise self.error(knode, f"{key}.{name}".lstrip("."), "duplicate key")
            seen.add(name)
            pairs.append((name, knode, vnode))
        return pairs

    def _mapof(self, node: MappingNode, schema: MapOf, key: str, depth: int) -> dict[str, Any]:
        out = {}
        for name, _knode, vnode in self._pairs(node, key):
            sub = f"{key}.{name}".lstrip(".")
            value = self.walk(vnode, schema.value, sub, depth + 1)
            if schema.build_item is not None:
                try:
                    value = schema.build_item(name, value)
                except ValueError as exc:
                    raise self.error(vnode, sub, str(exc)) from None
            out[name] = value
        return out

    def _struct(self, node: MappingNode, schema: Struct, key: str, depth: int) -> Any:
        values: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for name, knode, vnode in self._pairs(node, key):
            sub = f"{key}.{name}".lstrip(".")
            if name not in schema.fields:
                known = ", ".join(schema.fields)
                raise self.error(knode, sub, f"unknown key (known keys: {known})")
            values[name] = self.walk(vnode, schema.fields[name].schema, sub, depth + 1)
            lines[name] = content_line(vnode)
        for name, fld in schema.fields.items():
            if fld.required and name not in values:
                raise self.error(node, key or "(top)", f"missing required key {name!r}")
        if schema.build is None:
            values["__line__"] = node.start_mark.line + 1
            values["__lines__"] = lines
            return values
        try:
            return schema.build(values, node.start_mark.line + 1, lines)
        except ValueError as exc:
            raise self.error(node, key or "(top)", str(exc)) from None

    def _tagged(self, node: MappingNode, schema: Tagged, key: str, depth: int) -> Any:
        pairs = self._pairs(node, key)
        if len(pairs) != 1:
            raise self.error(node, key, f"expected {schema.describe()}")
        name, knode, vnode = pairs[0]
        sub = f"{key}.{name}"
        if name not in schema.options:
            raise self.error(knode, sub, f"unknown step kind (known: {', '.join(schema.options)})")
        value = self.walk(vnode, schema.options[name], sub, depth + 1)
        try:
            return schema.build(name, value, node.start_mark.line + 1)
        except ValueError as exc:
            raise self.error(node, sub, str(exc)) from None


def _compose(text: str, file: str) -> list[Node]:
    try:
        return [n for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ScenarioError(f"YAML syntax: {exc.problem or exc}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", 0)
        line = text[:position].count("\n") + 1 if isinstance(position, int) else 1
        raise ScenarioError(f"YAML: {exc}", file=file, line=line) from None
    except RecursionError:
        raise ScenarioError("YAML nested too deeply", file=file, line=1) from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict) and not k.startswith("__"):
            out[k] = {**out[k], **v}
        elif k in out and isinstance(out[k], tuple) and isinstance(v, tuple):
            out[k] = out[k] + v
        else:
            out[k] = v
    return out


def _find_include(name: str, here: Path) -> Path | None:
    """Next to the scenario, then in a ``fixtures/`` beside any directory above it."""
    here = here.resolve()
    bases = [here.parent, *(d / "fixtures" for d in here.parents), *FIXTURES_DIRS]
    for base in bases:
        candidate = base / name
        if candidate.is_file():
            return candidate
    return None


def _with_includes(
    values: dict[str, Any], path: Path, walker: _Walker, node: Node, seen: tuple[Path, ...]
) -> dict[str, Any]:
    names = values.pop("include", ())
    merged: dict[str, Any] = {}
    for name in names:
        found = _find_include(name, path)
        line = values["__lines__"].get("include", content_line(node))
        if found is None:
            raise ScenarioError(
                f"no such fixture {name!r}", file=walker.file, line=line, key="include"
            )
        if found.resolve() in seen:
            raise ScenarioError(
                f"include loop through {name!r}", file=walker.file, line=line, key="include"
            )
        merged = _merge(merged, load_fragment(found, (*seen, found.resolve())))
    return _merge(merged, values)


def load_fragment(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A fixture file: any scenario keys, all optional; its own includes resolved."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", file=file, line=1) from None
    nodes = _compose(text, file)
    if len(nodes) != 1:
        raise ScenarioError("a fixture holds exactly one mapping", file=file, line=1)
    walker = _Walker(file)
    values: dict[str, Any] = walker.walk(nodes[0], FRAGMENT, "")
    return _with_includes(values, path, walker, nodes[0], seen)


def _scenario_nodes(nodes: list[Node], file: str) -> list[Node]:
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, SequenceNode):
            out.extend(node.value)
        else:
            out.append(node)
    if not out:
        raise ScenarioError("no scenario in this file", file=file, line=1)
    return out


def load_text(text: str, path: Path | str = "<text>") -> list[Scenario]:
    """Every scenario in ``text`` (as if read from ``path``); ScenarioError if broken."""
    path = Path(path)
    file = str(path)
    walker = _Walker(file)
    scenarios = []
    for node in _scenario_nodes(_compose(text, file), file):
        values = walker.walk(node, SCENARIO, "")
        values = _with_includes(values, path, walker, node, (path.resolve(),))
        try:
            scenarios.append(build_scenario(values, file))
        except ValueError as exc:
            raise ScenarioError(str(exc), file=file, line=node.start_mark.line + 1) from None
    return scenarios


def load_file(path: Path | str) -> list[Scenario]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", file=str(path), line=1) from None
    return load_text(text, path)
