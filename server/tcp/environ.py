"""The TCP environment of tcp-environ(5), as tcpserver builds it for a client.

Pure functions: what the child's environment becomes, what the rules add,
and the ``-v`` log lines (tcpserver.c's doit()). A variable whose value is
unknown (no host name, no ident answer) is *removed* from the inherited
environment, as ucspi-tcp's ``env(NAME, 0)`` does, so a stale TCPREMOTEHOST
never leaks into a child.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from server.tcp.rules import Decision


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    """Both ends of one connection, and what is known about their names."""

    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    local_host: str | None = None
    remote_host: str | None = None
    remote_info: str | None = None


def put(env: dict[str, str], name: str, value: str | None) -> None:
    """Set ``name``, or remove it when ``value`` is None."""
    if value is None:
        env.pop(name, None)
    else:
        env[name] = value


def tcp_environ(base: Mapping[str, str], ends: Endpoints) -> dict[str, str]:
    """``base`` with PROTO and the TCP* variables set (or removed when unknown)."""
    env = dict(base)
    env["PROTO"] = "TCP"
    env["TCPLOCALIP"] = ends.local_ip
    env["TCPLOCALPORT"] = str(ends.local_port)
    put(env, "TCPLOCALHOST", ends.local_host)
    env["TCPREMOTEIP"] = ends.remote_ip
    env["TCPREMOTEPORT"] = str(ends.remote_port)
    put(env, "TCPREMOTEHOST", ends.remote_host)
    put(env, "TCPREMOTEINFO", ends.remote_info)
    return env


def with_rules(env: Mapping[str, str], decision: Decision | None) -> dict[str, str]:
    """The environment after the matching rule's ``+VAR=value`` entries."""
    out = dict(env)
    if decision is not None:
        for name, value in decision.env:
            out[name] = value
    return out


#: safecats: at most this many characters of each field are logged.
SAFE_MAX = 100


def safe(text: str) -> str:
    """tcpserver's safecats: control, 8-bit, ``%`` and ``:`` become ``?``."""
    out = []
    for ch in text[:SAFE_MAX]:
        bad = ord(ch) < 33 or ord(ch) > 126 or ch in "%:"
        out.append("?" if bad else ch)
    # safecats appends "..." once it has taken 100 characters, even if none follow.
    return "".join(out) + ("..." if len(text) >= SAFE_MAX else "")


def decision_line(pid: int, deny: bool, ends: Endpoints) -> str:
    """``tcpserver: ok|deny PID LHOST:LIP:LPORT RHOST:RIP:RINFO:RPORT`` (-v)."""
    local = f"{safe(ends.local_host or '')}:{safe(ends.local_ip)}:{ends.local_port}"
    remote = (
        f"{safe(ends.remote_host or '')}:{safe(ends.remote_ip)}:"
        f"{safe(ends.remote_info or '')}:{ends.remote_port}"
    )
    return f"tcpserver: {'deny' if deny else 'ok'} {pid} {local} {remote}"


def status_line(children: int, limit: int) -> str:
    return f"tcpserver: status: {children}/{limit}"


def pid_line(pid: int, remote_ip: str) -> str:
    return f"tcpserver: pid {pid} from {remote_ip}"


def end_line(pid: int, wstat: int) -> str:
    """``wstat`` is the raw wait status: exit code << 8, or the signal number."""
    return f"tcpserver: end {pid} status {wstat}"
