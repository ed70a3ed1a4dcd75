"""What qmail-qmtpd and qmail-qmqpd read before a session: controls and TCP* variables.

qmail-qmtpd reads rcpthosts (with morercpthosts.cdb), databytes (``$DATABYTES``
overrides it; all ones is kept one lower, as an unsigned int) and
``$RELAYCLIENT``; both read TCPREMOTEHOST, TCPREMOTEINFO, TCPREMOTEIP and
TCPLOCALHOST (else TCPLOCALIP) for their Received line, "unknown" when unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from server.control import ControlDir
from server.envget import env_bytes
from server.scan import scan_ulong
from server.smtpd.policy import Rcpthosts, load_rcpthosts

_UINT = 2**32


@dataclass(frozen=True, kw_only=True)
class QmtpdConfig:
    rcpthosts: Rcpthosts | None = None  # None: qmail-qmqpd, which reads no controls
    databytes: int = 0
    relayclient: bytes | None = None
    remotehost: bytes = b"unknown"
    remoteinfo: bytes | None = None
    remoteip: bytes = b"unknown"
    local: bytes = b"unknown"
    date_localtime: bool = False


def identity(env: Mapping[str, str]) -> dict[str, bytes | None]:
    """The TCP* variables as qmail-qmtpd.c and qmail-qmqpd.c's identify() read them."""
    return {
        "remotehost": env_bytes(env, "TCPREMOTEHOST", default=b"unknown"),
        "remoteinfo": env_bytes(env, "TCPREMOTEINFO"),
        "remoteip": env_bytes(env, "TCPREMOTEIP", default=b"unknown"),
        "local": env_bytes(env, "TCPLOCALHOST", "TCPLOCALIP", default=b"unknown"),
    }


def load_config(
    home: Path, env: Mapping[str, str], patches: frozenset[str], *, controls: bool = True
) -> QmtpdConfig:
    """main()'s setup; :class:`~server.errors.TempFail` is resources() (exit 111).
    Without ``controls`` (qmail-qmqpd) only the environment is read."""
    who = identity(env)
    if not controls:
        return QmtpdConfig(
            remotehost=who["remotehost"] or b"",
            remoteinfo=who["remoteinfo"],
            remoteip=who["remoteip"] or b"",
            local=who["local"] or b"",
            date_localtime="date-localtime" in patches,
        )
    ctrl = ControlDir(home / "control")
    rcpthosts = load_rcpthosts(ctrl)
    databytes = ctrl.readint("databytes", 0) % _UINT
    if "DATABYTES" in env:
        databytes = scan_ulong(env["DATABYTES"])[0] % _UINT
    if databytes == _UINT - 1:  # "if (!(databytes + 1)) --databytes;"
        databytes -= 1
    return QmtpdConfig(
        rcpthosts=rcpthosts,
        databytes=databytes,
        relayclient=env_bytes(env, "RELAYCLIENT"),
        remotehost=who["remotehost"] or b"",
        remoteinfo=who["remoteinfo"],
        remoteip=who["remoteip"] or b"",
        local=who["local"] or b"",
        date_localtime="date-localtime" in patches,
    )
