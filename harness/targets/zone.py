"""A scenario's time zone on every target: ``tz`` and ``localtime``.

``tz: JST-9`` is the ``TZ`` every program of the home gets, as an
administrator's run scripts would set it (qmail-start's environment, so
qmail-send's bounces and the qmail-queue it runs, and tcpserver's, so
qmail-smtpd; a step's own ``env`` can still change or remove it).

``localtime: Asia/Tokyo`` names the zone file (under /usr/share/zoneinfo)
that stands for the host's /etc/localtime, which the C library reads when
``TZ`` is unset. A home of ours keeps a copy at ``.qmail-sim/localtime``
(server.date822.LOCALTIME_FILE); for a real qmail the agent's private mount
namespace gets the copy bind-mounted over /etc/localtime (glibc has no
other way to be told), as harness.netns does for /etc/resolv.conf.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Final

from harness.scenario.model import Scenario
from server.date822 import LOCALTIME_FILE

ZONEINFO: Final = Path("/usr/share/zoneinfo")


def zone_env(scenario: Scenario) -> dict[str, str]:
    """The environment every program of the scenario's home starts from."""
    return {} if scenario.tz is None else {"TZ": scenario.tz}


def zone_file(name: str) -> Path:
    """The zone file ``name`` names under /usr/share/zoneinfo (ValueError if none)."""
    path = ZONEINFO / name
    if name.startswith("/") or ".." in Path(name).parts or not path.is_file():
        raise ValueError(f"localtime: no zone file {name!r} under {ZONEINFO}")
    return path


def install_localtime(home: Path, scenario: Scenario) -> Path | None:
    """Copy the scenario's ``localtime`` zone file into the home; its path."""
    if scenario.localtime is None:
        return None
    target = home / LOCALTIME_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(zone_file(scenario.localtime), target)
    target.chmod(0o644)
    return target


def bind_localtime(path: Path) -> None:
    """Inside a new mount namespace: put ``path`` over /etc/localtime.

    A symlinked /etc/localtime is followed, so its target (in this namespace
    only) shows ``path``'s zone too."""
    subprocess.run(
        ["mount", "--bind", str(path), "/etc/localtime"], check=True, capture_output=True
    )


__all__ = ["bind_localtime", "install_localtime", "zone_env", "zone_file"]
