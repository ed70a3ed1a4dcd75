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

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.scenario.dsl import (
    Confine,
    Either,
    MapOf,
    Scalar,
    Schema,
    Seq,
    Struct,
    Tagged,
    node_kind,
)
from harness.scenario.errors import ScenarioError, raise_all
from harness.scenario.model import Scenario
from harness.scenario.schema import FRAGMENT, OUTSIDE_KEY, SCENARIO, build_scenario

#: The checkout's fixtures/, and the copy installed with the package.
FIXTURES_DIRS = (
    Path(__file__).resolve().parents[2] / "fixtures",
    Path(__file__).resolve().parents[1] / "data" / "fixtures",
)
_MAX_DEPTH = 64
_KIND_NAMES = {ScalarNode: "a scalar", SequenceNode: "a list", MappingNode: "a mapping"}
_constructor = yaml.constructor.SafeConstructor()
OUTSIDE_HINT = f"a scenario that means it says {OUTSIDE_KEY}: true"


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


class _Broken(ScenarioError):
    """A container with broken parts: its errors are in ``_Walker.problems`` already."""


class _Walker:
    """Walks YAML nodes against a schema, recording every error it finds.

    A broken field, item or entry is recorded in :attr:`problems` and the walk
    goes on with its siblings, so one run reports all of a file's mistakes; a
    container with a broken part raises :class:`_Broken` (recorded already)
    instead of building. ``outside_ok`` is the scenario's
    ``paths_outside_workdir``: whether confined paths may leave the work dir.
    """

    def __init__(self, file: str, *, outside_ok: bool = False) -> None:
        self.file = file
        self.outside_ok = outside_ok
        self.problems: list[ScenarioError] = []

    def error(self, node: Node, key: str, message: str, line: int | None = None) -> ScenarioError:
        return ScenarioError(message, file=self.file, line=line or content_line(node), key=key)

    def record(self, exc: ScenarioError) -> None:
        if not isinstance(exc, _Broken):
            self.problems.append(exc)

    def top(self, node: Node, schema: Schema) -> Any:
        """Walk a whole document; raise every error found (ScenarioErrors for several)."""
        try:
            value = self.walk(node, schema, "")
        except ScenarioError as exc:
            self.record(exc)
            raise_all(self.problems)
            raise  # unreachable: a _Broken walk has recorded its errors
        return value

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
            parts = [(f"{key}[{i}]", n, schema.item) for i, n in enumerate(node.value)]
            items = list(self._each(parts, depth).values())
            try:
                return schema.build(items)
            except ValueError as exc:  # a list's builder may check the list as a whole
                raise self.error(node, key, str(exc)) from None
        if not isinstance(node, MappingNode):
            raise self._wrong(node, schema, key)
        if isinstance(schema, MapOf):
            return self._mapof(node, schema, key, depth)
        if isinstance(schema, Struct):
            return self._struct(node, schema, key, depth)
        return self._tagged(node, schema, key, depth)

    def _each(self, parts: Iterable[tuple[str, Node, Schema]], depth: int) -> dict[str, Any]:
        """Walk every part, recording the broken ones; _Broken if any was."""
        out: dict[str, Any] = {}
        broken = False
        for sub, node, schema in parts:
            try:
                out[sub] = self.walk(node, schema, sub, depth + 1)
            except ScenarioError as exc:
                self.record(exc)
                broken = True
        if broken:
            raise _Broken("(recorded)", file=self.file, line=1)
        return out

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
        mark = len(self.problems)
        last: tuple[ScenarioError, list[ScenarioError]] | None = None
        for option in fits:
            try:
                return self.walk(node, option, key, depth)
            except ScenarioError as exc:  # try the next option with a clean slate
                last = (exc, self.problems[mark:])
                del self.problems[mark:]
        assert last is not None
        if len(fits) > 1:
            raise self.error(node, key, f"expected {schema.describe()}") from None
        self.problems.extend(last[1])
        raise last[0]

    def _confined(self, node: Node, key: str, check: Confine | None, value: Any) -> None:
        if check is None or self.outside_ok:
            return
        reason = check(value)
        if reason is not None:
            raise self.error(node, key, f"{reason}; {OUTSIDE_HINT}")

    def _scalar(self, node: Node, schema: Scalar, key: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self._wrong(node, schema, key)
        value = self._scalar_value(node, schema, key)
        if schema.choices and value not in schema.choices:
            raise self.error(node, key, f"{value!r} is not {schema.describe()}")
        if schema.parse is not None:
            try:
                value = schema.parse(value)
            except ValueError as exc:
                offset = getattr(exc, "offset", None)
                line = content_line(node) + offset if isinstance(offset, int) else None
                raise self.error(node, key, str(exc), line) from None
        self._confined(node, key, schema.confine, value)
        return value

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
            if "\0" in name:  # never a file name, nor anything else a scenario means
                shown = f"{key}.{name}".lstrip(".").replace("\0", "\\0")
                raise self.error(knode, shown, "a key cannot hold a NUL byte")
            if name in seen:
                raise self.error(knode, f"{key}.{name}".lstrip("."), "duplicate key")
            seen.add(name)
            pairs.append((name, knode, vnode))
        return pairs

    def _mapof(self, node: MappingNode, schema: MapOf, key: str, depth: int) -> dict[str, Any]:
        out = {}
        broken = False
        for name, knode, vnode in self._pairs(node, key):
            sub = f"{key}.{name}".lstrip(".")
            try:
                self._confined(knode, sub, schema.confine_keys, name)
                value = self.walk(vnode, schema.value, sub, depth + 1)
                if schema.build_item is not None:
                    try:
                        value = schema.build_item(name, value)
                    except ValueError as exc:
                        raise self.error(vnode, sub, str(exc)) from None
            except ScenarioError as exc:
                self.record(exc)
                broken = True
                continue
            out[name] = value
        if broken:
            raise _Broken("(recorded)", file=self.file, line=1)
        return out

    def _struct(self, node: MappingNode, schema: Struct, key: str, depth: int) -> Any:
        lines: dict[str, int] = {}
        parts: list[tuple[str, Node, Schema]] = []
        names: dict[str, str] = {}
        broken = False
        for name, knode, vnode in self._pairs(node, key):
            sub = f"{key}.{name}".lstrip(".")
            if name not in schema.fields:
                known = ", ".join(schema.fields)
                self.record(self.error(knode, sub, f"unknown key (known keys: {known})"))
                broken = True
                continue
            parts.append((sub, vnode, schema.fields[name].schema))
            names[sub] = name
            lines[name] = content_line(vnode)
        for name, fld in schema.fields.items():
            if fld.required and name not in lines:
                self.record(self.error(node, key or "(top)", f"missing required key {name!r}"))
                broken = True
        walked = self._each(parts, depth)  # raises _Broken after recording its own
        if broken:
            raise _Broken("(recorded)", file=self.file, line=1)
        values = {names[sub]: v for sub, v in walked.items()}
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


#: PyYAML errors found past the construct at fault: the scanner looks for a
#: key's ':' or a closing quote, the parser for a flow collection's ',' or
#: closing bracket, and notices the lack on the next line or at the end. The
#: context mark (where the key, quote or bracket starts) is the line to fix.
_FOUND_LATER = (
    "while scanning a simple key",
    "while scanning a quoted scalar",
    "while parsing a flow",
)


def _yaml_error(exc: yaml.MarkedYAMLError, file: str) -> ScenarioError:
    problem, context = exc.problem or str(exc), exc.context or ""
    at, where = exc.problem_mark, exc.context_mark
    if where is not None and context.startswith(_FOUND_LATER):
        message = f"YAML syntax: {problem}"
        if at is not None and at.line != where.line:
            message += f" (noticed on line {at.line + 1}, {context} that starts here)"
        return ScenarioError(message, file=file, line=where.line + 1)
    mark = at or where
    line = mark.line + 1 if mark is not None else 1
    return ScenarioError(f"YAML syntax: {problem}", file=file, line=line)


#: libyaml's parser (when PyYAML was built with it) composes the same nodes
#: about ten times faster. Its error messages are worded differently, so a
#: file it rejects is composed again by the pure-Python parser, whose error
#: is the one reported.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _compose(text: str, file: str) -> list[Node]:
    if _FAST_LOADER is not None:
        try:
            return [n for n in yaml.compose_all(text, Loader=_FAST_LOADER) if n is not None]
        except (yaml.YAMLError, RecursionError):
            pass
    try:
        return [n for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n is not None]
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, file) from None
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
    """A fixture file: any scenario keys, all optional; its own includes resolved.

    Its paths stay inside the work directory: only a scenario itself can say
    ``paths_outside_workdir: true``."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", file=file, line=1) from None
    nodes = _compose(text, file)
    if len(nodes) != 1:
        raise ScenarioError("a fixture holds exactly one mapping", file=file, line=1)
    walker = _Walker(file)
    values: dict[str, Any] = walker.top(nodes[0], FRAGMENT)
    return _with_includes(values, path, walker, nodes[0], seen)


def _outside_ok(node: Node) -> bool:
    """Whether a scenario's mapping says ``paths_outside_workdir: true``."""
    if not isinstance(node, MappingNode):
        return False
    for knode, vnode in node.value:
        if isinstance(knode, ScalarNode) and knode.value == OUTSIDE_KEY:
            is_bool = isinstance(vnode, ScalarNode) and vnode.tag == "tag:yaml.org,2002:bool"
            return is_bool and _constructor.construct_yaml_bool(vnode) is True
    return False


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
    """Every scenario in ``text`` (as if read from ``path``).

    Raises a ScenarioError naming file, line and key; a ScenarioErrors when
    the file has several mistakes (every scenario in it is checked)."""
    path = Path(path)
    file = str(path)
    scenarios: list[Scenario] = []
    problems: list[ScenarioError] = []
    for node in _scenario_nodes(_compose(text, file), file):
        try:
            scenarios.append(_load_one(node, path))
        except ScenarioError as exc:
            known = {str(e) for e in problems}  # a broken fixture included twice: once
            problems.extend(e for e in exc.errors if str(e) not in known)
    raise_all(problems)
    return scenarios


def _load_one(node: Node, path: Path) -> Scenario:
    file = str(path)
    walker = _Walker(file, outside_ok=_outside_ok(node))
    values = walker.top(node, SCENARIO)
    values = _with_includes(values, path, walker, node, (path.resolve(),))
    try:
        return build_scenario(values, file)
    except ValueError as exc:
        raise ScenarioError(str(exc), file=file, line=node.start_mark.line + 1) from None


def load_file(path: Path | str) -> list[Scenario]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", file=str(path), line=1) from None
    return load_text(text, path)
