"""control/smtproutes, looked up as qmail-remote.c looks it up (qmail-control(5), qmail-remote(8)).

Each line is ``domain:relay``; ``.domain`` matches any host below ``domain``
(not ``domain`` itself); an empty domain (``:relay``) matches everything;
an empty relay means "use the MX records as usual"; ``relay:port`` picks the
port. qmail-remote tries the whole host first, then each suffix starting at a
dot, then the empty name, and stops at the first key found (even when its
relay is empty). Keys compare without ASCII case and, with several lines for
one key, the last line wins (constmap.c puts later entries first in its
chains). Lines without a colon are ignored (constmap_init with flagcolon).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from server.scan import scan_ulong

PORT_SMTP = 25
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fold(key: str) -> str:
    return key.translate(_ASCII_LOWER)


@dataclass(frozen=True)
class Route:
    """Where to send: ``relay`` None means the host's own MX records."""

    relay: str | None
    port: int = PORT_SMTP


class SmtpRoutes:
    def __init__(self, lines: Iterable[str] | None) -> None:
        self._map: dict[str, str] = {}
        for line in lines or ():
            key, colon, value = line.partition(":")
            if colon:
                self._map[_fold(key)] = value

    def lookup(self, host: str) -> Route:
        for i in range(len(host) + 1):
            if i in (0, len(host)) or host[i] == ".":
                value = self._map.get(_fold(host[i:]))
                if value is not None:
                    return self._route(value)
        return Route(None)

    @staticmethod
    def _route(value: str) -> Route:
        if not value:
            return Route(None)
        relay, colon, port = value.partition(":")
        if colon:
            # scan_ulong: no digits means port 0; C keeps only 16 bits of it
            return Route(relay, scan_ulong(port)[0] % 65536)
        return Route(relay)
