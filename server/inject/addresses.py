"""qmail-inject's address rewriting (qmail-inject.c, qmail-header(5)).

:class:`Rewriter` is rwgeneric(): on an address's tokens, in order,

1. ``<>`` and ``<foo@[]>`` are left alone;
2. a source route ``@a,@b:user@host`` loses everything through its first
   colon (an address starting with "@" and no colon vanishes);
3. one trailing "." and then one trailing "@" are dropped;
4. an address without "@" gets ``@defaulthost``;
5. a host ending in "+" loses it and gets ``.plusdomain``;
6. a host without a dot (and not a ``[literal]``) gets ``.defaultdomain``.

Where qmail-inject's own code works on reversed token lists, these
functions take and return tokens in reading order.

Quoting the local part (quote.c) is :mod:`server.quote`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from server.control import ControlDir
from server.inject.token822 import T, Token, parse


@dataclass(frozen=True)
class Rewriter:
    """rwgeneric() with the three names it adds, already as tokens."""

    defaulthost: tuple[Token, ...]  # "@" defaulthost
    defaultdomain: tuple[Token, ...]  # "." defaultdomain
    plusdomain: tuple[Token, ...]  # "." plusdomain

    @classmethod
    def from_names(cls, defaulthost: bytes, defaultdomain: bytes, plusdomain: bytes) -> Rewriter:
        """Raises :class:`~server.inject.token822.ParseError` for a name that does not parse."""
        return cls(
            tuple(parse(b"@" + defaulthost)),
            tuple(parse(b"." + defaultdomain)),
            tuple(parse(b"." + plusdomain)),
        )

    def __call__(self, addr: list[Token]) -> list[Token]:
        if not addr:
            return addr  # <>
        if len(addr) >= 2 and addr[-2].type is T.AT and addr[-1] == Token(T.LITERAL):
            return addr  # <foo@[]>
        addr = _drop_route(addr)
        for kind in (T.DOT, T.AT):  # <x.> -> <x>, <x@> -> <x>
            if addr and addr[-1].type is kind:
                addr = addr[:-1]
        if not addr:
            return addr
        if not any(t.type is T.AT for t in addr):
            addr = [*addr, *self.defaulthost]
        last = addr[-1]
        if last.type is T.ATOM and last.text.endswith(b"+"):
            addr = [*addr[:-1], Token(T.ATOM, last.text[:-1]), *self.plusdomain]
        if _host_is_bare(addr):
            addr = [*addr, *self.defaultdomain]
        return addr


def _drop_route(addr: list[Token]) -> list[Token]:
    """rwroute(): "@a,@b:user@host" -> "user@host"; "@host" alone -> nothing."""
    if addr[0].type is not T.AT:
        return addr
    for i, token in enumerate(addr):
        if token.type is T.COLON:
            return addr[i + 1 :]
    return []


def _host_is_bare(addr: list[Token]) -> bool:
    """rwnodot(): no "." and no [literal] after the last "@"."""
    host: list[Token] = []
    for token in reversed(addr):
        if token.type is T.AT:
            break
        host.append(token)
    return not any(t.type in (T.DOT, T.LITERAL) for t in host)


@dataclass(frozen=True)
class Names:
    """getcontrols(): the four names, each from its control file (default ``me``)
    and overridden by its environment variable."""

    defaultdomain: bytes
    defaulthost: bytes
    plusdomain: bytes
    idhost: bytes

    @classmethod
    def read(cls, control: ControlDir, env: Mapping[str, str]) -> Names:
        values = {}
        for name in ("defaultdomain", "defaulthost", "plusdomain", "idhost"):
            override = env.get("QMAIL" + name.upper())
            if override is not None:
                values[name] = override.encode("utf-8", "surrogateescape")
            else:  # ControlDir reads control files as latin-1: every byte kept
                values[name] = (control.rldef(name, True, name) or "").encode("latin-1")
        return cls(**values)
