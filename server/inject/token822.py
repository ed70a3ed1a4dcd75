"""RFC 822 tokens as qmail-inject sees them (token822.c's rules, in bytes).

:func:`parse` turns a header field into :class:`Token` s: the specials
``. , @ < > : ;``, atoms, quoted strings, domain literals and comments.
Two quirks matter for what comes out: a nested comment loses its inner
parentheses, and an atom holding a byte outside 32..126 or one of
``) ] \\`` becomes a quoted string. A lone ``)`` or ``]``, or an unclosed
comment, quote or literal, is a :class:`ParseError` ("unable to parse this
line").

:func:`addrlist` walks an address list from right to left, as token822.c
does ("rfc 822 address lists are easy to parse from right to left"), hands
each address to a rewrite function and keeps the phrases, comments, group
syntax and commas around it. :func:`unparse` writes tokens back, folding at
commas so a line stays within 80 columns where it can; :func:`unquote` gives
the bare address text used in envelopes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final


class T(enum.IntEnum):
    ATOM = 1
    QUOTE = 2
    LITERAL = 3
    COMMENT = 4
    LEFT = 5
    RIGHT = 6
    AT = 7
    COMMA = 8
    SEMI = 9
    COLON = 10
    DOT = 11


WORDS: Final = frozenset({T.ATOM, T.QUOTE, T.LITERAL, T.COMMENT})
SPECIALS: Final = {
    ord("."): T.DOT,
    ord(","): T.COMMA,
    ord("@"): T.AT,
    ord("<"): T.LEFT,
    ord(">"): T.RIGHT,
    ord(":"): T.COLON,
    ord(";"): T.SEMI,
}
SYMBOLS: Final = {kind: bytes([char]) for char, kind in SPECIALS.items()}
SPACE: Final = frozenset(b" \t\r\n")
#: atomok(): the bytes that end an atom.
ATOM_STOP: Final = frozenset(b' \t\r\n(["<>;:@,.')
#: atomcheck(): an atom with one of these is written as a quoted string.
NOT_ATOM: Final = frozenset(b")]\\")
#: unparse(): bytes written with a backslash before them inside any word.
ESCAPED: Final = frozenset(b'"[]()\\\r\n')
#: qmail-inject.c's LINELEN.
LINELEN: Final = 80


@dataclass(frozen=True, slots=True)
class Token:
    type: T
    text: bytes = b""


class ParseError(Exception):
    """token822_parse() or token822_addrlist() returned 0."""

    def __init__(self, data: bytes, why: str) -> None:
        super().__init__(f"{why}: {data!r}")
        self.data = data
        self.why = why


def _enclosed(data: bytes, start: int, close: int, nest: int | None) -> tuple[bytes, int]:
    """The text of a comment/quote/literal opening at ``start``; the index after it."""
    out = bytearray()
    level = 1
    i = start
    while True:
        i += 1
        if i >= len(data):
            raise ParseError(data, "unterminated " + chr(data[start]))
        ch = data[i]
        if ch == nest:
            level += 1  # the nested "(" itself is not kept
        elif ch == close:
            level -= 1
            if not level:
                return bytes(out), i + 1
        else:
            if ch == ord("\\"):
                i += 1
                if i >= len(data):
                    raise ParseError(data, "backslash at the end")
            out.append(data[i])


def _atom(data: bytes, i: int) -> tuple[Token, int]:
    out = bytearray()
    while True:
        if data[i] == ord("\\"):
            i += 1
            if i >= len(data):
                break  # a final backslash is dropped
        out.append(data[i])
        i += 1
        if i >= len(data) or data[i] in ATOM_STOP:
            break
    text = bytes(out)
    odd = any(b < 32 or b > 126 or b in NOT_ATOM for b in text)
    return Token(T.QUOTE if odd else T.ATOM, text), i


def parse(data: bytes) -> list[Token]:
    """token822_parse(): the tokens of ``data``, or :class:`ParseError`."""
    tokens: list[Token] = []
    i = 0
    while i < len(data):
        ch = data[i]
        if ch in SPECIALS:
            tokens.append(Token(SPECIALS[ch]))
            i += 1
        elif ch in SPACE:
            i += 1
        elif ch in b")]":
            raise ParseError(data, "unbalanced " + chr(ch))
        elif ch == ord("("):
            text, i = _enclosed(data, i, ord(")"), ord("("))
            tokens.append(Token(T.COMMENT, text))
        elif ch == ord('"'):
            text, i = _enclosed(data, i, ord('"'), None)
            tokens.append(Token(T.QUOTE, text))
        elif ch == ord("["):
            text, i = _enclosed(data, i, ord("]"), None)
            tokens.append(Token(T.LITERAL, text))
        else:
            token, i = _atom(data, i)
            tokens.append(token)
    return tokens


def _needspace(last: T | None, new: T) -> bool:
    if last is None:
        return False
    if last in (T.COLON, T.COMMA) or new is T.LEFT:
        return True
    return last in WORDS and new in WORDS


_DELIMITERS: Final = {T.QUOTE: (b'"', b'"'), T.LITERAL: (b"[", b"]"), T.COMMENT: (b"(", b")")}


def _word(token: Token) -> bytes:
    body = b"".join(b"\\" + bytes([b]) if b in ESCAPED else bytes([b]) for b in token.text)
    if token.type is T.ATOM:
        return body
    opening, closing = _DELIMITERS[token.type]
    return opening + body + closing


class _Folder:
    """token822_unparse()'s line breaking: a break after each comma, kept
    only when the line it ends would otherwise run past ``linelen``."""

    def __init__(self, linelen: int) -> None:
        self.out = bytearray()
        self.linelen = linelen
        self.line_start = 0
        self.pending: int | None = None  # index of the last tentative "\n "

    def comma_break(self) -> None:
        here = len(self.out)
        self.out += b"\n "
        fits = not self.linelen or here - self.line_start <= self.linelen
        if self.pending is not None and fits:
            del self.out[self.pending : self.pending + 2]
        elif self.pending is not None:
            self.line_start = self.pending + 1
        self.pending = len(self.out) - 2


def unparse(tokens: Sequence[Token], linelen: int = LINELEN) -> bytes:
    """token822_unparse(): the tokens as a header line, ending in "\\n"."""
    folder = _Folder(linelen)
    last: T | None = None
    for token in tokens:
        if _needspace(last, token.type):
            folder.out += b" "
        last = token.type
        if token.type in WORDS:
            folder.out += _word(token)
        else:
            folder.out += SYMBOLS[token.type]
            if token.type is T.COMMA:
                folder.comma_break()
    folder.comma_break()
    return bytes(folder.out[:-1])


def unquote(tokens: Sequence[Token]) -> bytes:
    """token822_unquote(): the plain text, comments dropped, literals in brackets."""
    parts = []
    for token in tokens:
        if token.type is T.LITERAL:
            parts.append(b"[" + token.text + b"]")
        elif token.type in (T.ATOM, T.QUOTE):
            parts.append(token.text)
        elif token.type is not T.COMMENT:
            parts.append(SYMBOLS[token.type])
    return b"".join(parts)


Rewrite = Callable[[list[Token]], list[Token]]
#: Tokens that may stand in the phrase before "<...>".
_PHRASE: Final = frozenset({T.COMMENT, T.ATOM, T.QUOTE, T.AT, T.DOT})


class _ListWalker:
    """token822_addrlist()'s right-to-left walk; ``out`` and ``addr`` are reversed."""

    def __init__(self, tokens: Sequence[Token], rewrite: Rewrite) -> None:
        self.tokens = tokens
        self.rewrite = rewrite
        self.out: list[Token] = []
        self.addr: list[Token] = []

    def got(self) -> None:
        """gotaddr(): rewrite the collected address and move it to the output."""
        self.out.extend(reversed(self.rewrite(self.addr[::-1])))
        self.addr = []

    def flush(self, comma: bool = False) -> None:
        if self.addr:
            self.got()
            if comma:
                self.out.append(Token(T.COMMA))

    def walk(self, first: int) -> list[Token]:
        t = len(self.tokens) - 1
        in_group = False
        word_ok = True
        while t >= first:
            kind = self.tokens[t].type
            if kind is T.SEMI:
                self.flush(comma=True)
                if in_group:
                    raise ParseError(unparse(self.tokens), "nested group")
                in_group, word_ok = True, True
            elif kind is T.COLON:
                self.flush()
                if not in_group:
                    raise ParseError(unparse(self.tokens), "colon outside a group")
                in_group, word_ok = False, True
                t = self._copy_while(t, first, lambda k: k is not T.COMMA)
                if t >= first:
                    self.out.append(self.tokens[t])
                    t -= 1
                continue
            elif kind is T.RIGHT:
                t = self._angle(t, first)
                word_ok = False
                continue
            elif kind in (T.ATOM, T.QUOTE, T.LITERAL):
                if not word_ok:
                    self.flush(comma=True)
                word_ok = False
                self.addr.append(self.tokens[t])
                t -= 1
                continue
            elif kind is T.COMMA:
                self.flush()
                word_ok = True
            elif kind is not T.COMMENT:  # a comment is lexically a space
                word_ok = True
                self.addr.append(self.tokens[t])
                t -= 1
                continue
            self.out.append(self.tokens[t])
            t -= 1
        self.flush()
        self.out.extend(reversed(self.tokens[:first]))
        return self.out[::-1]

    def _copy_while(self, t: int, first: int, keep: Callable[[T], bool]) -> int:
        while t >= first and keep(self.tokens[t].type):
            self.out.append(self.tokens[t])
            t -= 1
        return t

    def _angle(self, t: int, first: int) -> int:
        """``phrase <address>`` seen from its ">": the address may be empty (<>)."""
        self.flush(comma=True)
        self.out.append(self.tokens[t])
        t -= 1
        while t >= first and self.tokens[t].type is not T.LEFT:
            self.addr.append(self.tokens[t])
            t -= 1
        self.got()
        if t < first:
            raise ParseError(unparse(self.tokens), "'>' without '<'")
        self.out.append(self.tokens[t])
        return self._copy_while(t - 1, first, lambda k: k in _PHRASE)


def addrlist(tokens: Sequence[Token], rewrite: Rewrite, first: int = 2) -> list[Token]:
    """token822_addrlist(): ``tokens`` with each address replaced by ``rewrite(address)``.

    The first ``first`` tokens (the field name and its colon) are kept as
    they are. Addresses are found right to left, so ``rewrite`` sees the last
    one first.
    """
    return _ListWalker(tokens, rewrite).walk(first)
