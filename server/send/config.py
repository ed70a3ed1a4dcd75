"""The control files qmail-send reads, read once into a frozen object.

qmail-send.c getcontrols(): queuelifetime, concurrencylocal,
concurrencyremote, envnoathost, bouncefrom, bouncehost, doublebouncehost,
doublebounceto, locals (default: me; no me and no locals means qmail-send
refuses to start), percenthack and virtualdomains. A HUP rereads only locals
and virtualdomains (qmail-send(8)); :meth:`SendConfig.reread` does that.

Domain lookups are case-insensitive for ASCII letters only, as constmap.c's
hash and case_diffb are; a virtualdomains line without a colon is ignored,
and when a key appears twice the last line wins (constmap chains new entries
in front).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from server.control import ControlDir
from server.errors import TempFail
from server.send.schedule import AUTO_SPAWN, DEFAULT_LIFETIME
from server.spawn import ChannelName

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(key: str) -> str:
    """constmap's case folding: A-Z only."""
    return key.translate(_ASCII_LOWER)


def keyset(lines: list[str] | None) -> frozenset[str]:
    return frozenset(fold(line) for line in lines or ())


def colon_map(lines: list[str] | None) -> dict[str, str]:
    """constmap with flagcolon: ``key:value``; lines without a colon are skipped."""
    result: dict[str, str] = {}
    for line in lines or ():
        key, colon, value = line.partition(":")
        if colon:
            result[fold(key)] = value
    return result


class ControlsUnreadable(Exception):
    """getcontrols() failed: qmail-send logs "cannot start" and exits 111."""


@dataclass(frozen=True, kw_only=True)
class SendConfig:
    lifetime: int = DEFAULT_LIFETIME
    concurrency: dict[ChannelName, int] = field(default_factory=lambda: {"local": 10, "remote": 20})
    envnoathost: str = "envnoathost"
    bouncefrom: str = "MAILER-DAEMON"
    bouncehost: str = "bouncehost"
    #: doublebounceto@doublebouncehost, as getcontrols() joins them
    doublebounceto: str = "postmaster@doublebouncehost"
    locals: frozenset[str] = frozenset()
    percenthack: frozenset[str] = frozenset()
    vdoms: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, control: Path) -> SendConfig:
        cd = ControlDir(control)
        try:
            local_lines = cd.readfile("locals", flagme=True)
            if local_lines is None:
                raise ControlsUnreadable("control/locals and control/me are both missing")
            dbto = cd.rldef("doublebounceto", False, "postmaster")
            dbhost = cd.rldef("doublebouncehost", True, "doublebouncehost")
            return cls(
                lifetime=cd.readint("queuelifetime", DEFAULT_LIFETIME),
                concurrency={
                    # the spawn programs announce conf-spawn; qmail-send takes the lower
                    "local": min(cd.readint("concurrencylocal", 10), AUTO_SPAWN),
                    "remote": min(cd.readint("concurrencyremote", 20), AUTO_SPAWN),
                },
                envnoathost=cd.rldef("envnoathost", True, "envnoathost") or "",
                bouncefrom=cd.rldef("bouncefrom", False, "MAILER-DAEMON") or "",
                bouncehost=cd.rldef("bouncehost", True, "bouncehost") or "",
                doublebounceto=f"{dbto}@{dbhost}",
                locals=keyset(local_lines),
                percenthack=keyset(cd.readfile("percenthack")),
                vdoms=colon_map(cd.readfile("virtualdomains")),
            )
        except TempFail as exc:
            raise ControlsUnreadable(exc.text) from exc

    def reread(self, control: Path) -> tuple[SendConfig, str | None]:
        """regetcontrols(): fresh locals and virtualdomains, or an alert and no change."""
        cd = ControlDir(control)
        try:
            local_lines = cd.readfile("locals", flagme=True)
        except TempFail:
            local_lines = None
        if local_lines is None:
            return self, "alert: unable to reread control/locals"
        try:
            vdom_lines = cd.readfile("virtualdomains")
        except TempFail:
            return self, "alert: unable to reread control/virtualdomains"
        return (
            dataclasses.replace(self, locals=keyset(local_lines), vdoms=colon_map(vdom_lines)),
            None,
        )
