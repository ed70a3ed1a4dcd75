"""resolv.conf, read as glibc's res_init reads it, plus one extension for ports.

Recognised lines (resolv.conf(5)): ``nameserver ADDRESS`` (at most MAXNS = 3
are kept, in order), ``options timeout:N attempts:N`` (capped at 30 and 5
as res_init caps them), ``options edns0`` and ``trust-ad`` (systemd-resolved's
stub file has both). ``domain``/``search`` are read and ignored: qmail
calls ``res_query``, which never applies the search list. Comments start
with ``#`` or ``;``. No name server at all means 127.0.0.1 port 53.

Our extension, so a fake DNS can listen on any port: ``nameserver
127.0.0.1:5353`` or ``nameserver [::1]:5353``, and ``options port:5353``
(the port for every name server given without one).

Which file: :func:`resolvconf_path` picks the one named by the caller, else
``HOME/.qmail-sim/resolv.conf`` when the home has one, else /etc/resolv.conf.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from server.dns.resolver import (
    MAXNS,
    NAMESERVER_PORT,
    RES_DFLRETRY,
    RES_MAXRETRANS,
    RES_MAXRETRY,
    RES_TIMEOUT,
    ResolverConfig,
)

SYSTEM_RESOLV_CONF = Path("/etc/resolv.conf")
HOME_RESOLV_CONF = ".qmail-sim/resolv.conf"


def resolvconf_path(home: Path | None, given: Path | None = None) -> Path:
    if given is not None:
        return given
    if home is not None and (home / HOME_RESOLV_CONF).is_file():
        return home / HOME_RESOLV_CONF
    return SYSTEM_RESOLV_CONF


def _address(text: str) -> tuple[str, int | None] | None:
    host, port = text, None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, digits = text.partition(":")
        if not digits.isdigit():
            return None
        port = int(digits)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    if port is not None and not 0 < port < 65536:
        return None
    return host, port


def parse(text: str) -> ResolverConfig:
    """The configuration a resolv.conf-style ``text`` gives."""
    servers: list[tuple[str, int | None]] = []
    timeout, attempts, default_port = RES_TIMEOUT, RES_DFLRETRY, NAMESERVER_PORT
    flags: set[str] = set()
    for raw in text.splitlines():
        words = raw.split()
        if not words or words[0][0] in "#;":
            continue
        if words[0] == "nameserver" and len(words) > 1 and len(servers) < MAXNS:
            address = _address(words[1])
            if address is not None:
                servers.append(address)
        elif words[0] == "options":
            flags.update(words[1:])
            for option in words[1:]:
                name, _, value = option.partition(":")
                if not value.isdigit():
                    continue
                if name == "timeout":
                    timeout = min(int(value), RES_MAXRETRANS)
                elif name == "attempts":
                    attempts = min(int(value), RES_MAXRETRY)
                elif name == "port" and 0 < int(value) < 65536:
                    default_port = int(value)
    resolved = tuple((host, default_port if port is None else port) for host, port in servers)
    return ResolverConfig(
        nameservers=resolved or (("127.0.0.1", default_port),),
        timeout=max(timeout, 1),
        attempts=max(attempts, 1),
        edns0="edns0" in flags,
        trust_ad="trust-ad" in flags,
    )


def load(path: Path) -> ResolverConfig:
    """Read ``path``; a missing file is an empty one, as for res_init."""
    try:
        text = path.read_text(encoding="latin-1")
    except FileNotFoundError:
        text = ""
    return parse(text)
