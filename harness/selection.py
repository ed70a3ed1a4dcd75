"""``-k EXPR`` and ``--tag T``: choosing scenarios, the way pytest's ``-k`` does.

``EXPR`` is words joined by ``and``, ``or``, ``not`` and parentheses; a word
matches when it is a case-insensitive substring of the scenario's name, file
or one of its tags.
"""

from __future__ import annotations

import re

from harness.scenario import Scenario

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


class BadExpression(ValueError):
    pass


def matches_k(expr: str, scenario: Scenario) -> bool:
    haystack = [scenario.name.lower(), scenario.file.lower(), *(t.lower() for t in scenario.tags)]
    tokens = _TOKEN.findall(expr)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise BadExpression(f"-k {expr!r}: unexpected end")
        pos += 1
        token: str = tokens[pos - 1]
        return token

    def atom() -> bool:
        tok = take()
        if tok == "not":
            return not atom()
        if tok == "(":
            value = either()
            if take() != ")":
                raise BadExpression(f"-k {expr!r}: missing )")
            return value
        if tok in ("and", "or", ")"):
            raise BadExpression(f"-k {expr!r}: unexpected {tok!r}")
        return any(tok.lower() in h for h in haystack)

    def both() -> bool:
        value = atom()
        while peek() == "and":
            take()
            value = atom() and value
        return value

    def either() -> bool:
        value = both()
        while peek() == "or":
            take()
            value = both() or value
        return value

    result = either()
    if pos != len(tokens):
        raise BadExpression(f"-k {expr!r}: unexpected {tokens[pos]!r}")
    return result


def select(scenarios: list[Scenario], k: str | None, tags: list[str] | None) -> list[Scenario]:
    out = scenarios
    if tags:
        out = [s for s in out if set(tags) & set(s.tags)]
    if k:
        out = [s for s in out if matches_k(k, s)]
    return out
