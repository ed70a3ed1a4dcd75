"""Private network and mount namespaces for live and reference runs (``unshare``).

A live run binds fake peers on ``127.x.y.z:25`` and the fake DNS on port
53; a reference run must make a real qmail's resolver (which reads
/etc/resolv.conf and nothing else) ask the fake DNS. Both are done by
running the harness's agent process under ``unshare --net --mount``: in the
new network namespace only a loopback interface exists (brought up by
:func:`inside_setup`), so nothing the scenario binds can collide with the
host or with another run, and in the new mount namespace a bind mount puts
our resolv.conf over /etc/resolv.conf for that process tree only.

:func:`available` answers once per process whether this works here (root,
or unprivileged user namespaces, and util-linux's unshare); without it the
live target falls back to the host's loopback and the reference target is
refused with the reason.
"""

from __future__ import annotations

import functools
import ipaddress
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

#: How long the probe may take: unshare is instant when it works.
PROBE_TIMEOUT = 10.0


@functools.cache
def why_unavailable() -> str | None:
    """None when ``unshare --net --mount`` works here, else the reason it does not."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux's unshare is not installed"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed (needed to bring up lo in the namespace)"
    try:
        done = subprocess.run(
            [unshare, "--net", "--mount", "true"],
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip()
        return f"unshare --net --mount is not permitted here ({reason})"
    return None


def available() -> bool:
    return why_unavailable() is None


def prefix() -> list[str]:
    """The command words that run a program in fresh network and mount namespaces."""
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "--net", "--mount", "--propagation", "private", "--"]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def inside_setup(addresses: Iterable[str] = ()) -> None:
    """Called inside a new namespace: bring lo up and give it ``addresses``.

    All of 127.0.0.0/8 is local once lo is up; another IPv4 address (a client
    address such as 10.0.0.5 that a scenario's tcprules talk about, or a DNS
    server address) is added to lo as a /32, so a socket can bind to it. This
    touches only the private namespace.
    """
    _ip("link", "set", "lo", "up")
    for text in sorted(set(addresses)):
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified or address.is_multicast:
            continue
        _ip("addr", "add", f"{address}/32", "dev", "lo")


def bind_resolv_conf(path: Path) -> None:
    """Inside a new mount namespace: put ``path`` over /etc/resolv.conf."""
    subprocess.run(
        ["mount", "--bind", str(path), "/etc/resolv.conf"], check=True, capture_output=True
    )


def bind_over(source: Path, target: Path) -> None:
    """Inside a new mount namespace: put directory ``source`` over ``target``
    (which must exist), for this process tree only."""
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True, capture_output=True)


__all__ = [
    "available",
    "bind_over",
    "bind_resolv_conf",
    "inside_setup",
    "prefix",
    "why_unavailable",
]
