"""qmail-smtpd's policy, read once into a frozen :class:`SmtpdConfig`.

setup() in qmail-smtpd.c reads, in this order: ``me`` (control_init),
``smtpgreeting`` (default ``me``; neither means "421 unable to read
controls"), ``localiphost`` (default ``me``), ``timeoutsmtpd`` (a value of 0
or less becomes 1), ``rcpthosts`` with ``morercpthosts.cdb`` (rcpthosts.c),
``badmailfrom``, ``databytes`` (overridden by ``$DATABYTES``), then the TCP*
variables and ``RELAYCLIENT``.

The decisions are small functions of a parsed address: :func:`rcpt_allowed`
(rcpthosts.c), :func:`bmf_listed` (bmfcheck), :func:`relay_hack`
(relay-reject.patch's addrrelay). They take and give bytes, like qmail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from server.cdb import CdbError, Reader
from server.control import ControlDir
from server.envget import env_bytes
from server.errors import TempFail
from server.scan import scan_ulong
from server.smtpd.address import IPv4

#: qmail-smtpd.c's MAXHOPS: 100 or more Received/Delivered-To lines is a loop.
MAXHOPS = 100
#: databytes is an ``unsigned int`` in qmail-smtpd.c.
_UINT = 2**32


def _latin1(text: str) -> bytes:
    return text.encode("latin-1")


@dataclass(frozen=True, kw_only=True)
class Rcpthosts:
    """rcpthosts plus morercpthosts.cdb; ``hosts is None`` means no rcpthosts file."""

    hosts: frozenset[bytes] | None
    more: Reader | None = None

    def allowed(self, addr: bytes) -> bool:
        """rcpthosts(): no file, or no ``@``, is allowed; else match the host.

        The host (after the last ``@``, lower-cased) matches an entry equal to
        it, or an entry equal to any suffix of it starting at a dot: the host
        ``a.b.example`` tries ``a.b.example``, ``.b.example``, ``.example``.
        """
        if self.hosts is None:
            return True
        at = addr.rfind(b"@")
        if at < 0:
            return True  # "presumably envnoathost is acceptable"
        host = addr[at + 1 :].lower()
        suffixes = [host[j:] for j in range(len(host)) if j == 0 or host[j] == 0x2E]
        if any(s in self.hosts for s in suffixes):
            return True
        if self.more is not None:
            try:
                return any(self.more.get(s) is not None for s in suffixes)
            except CdbError as exc:
                raise TempFail("unable to read control/morercpthosts.cdb") from exc
        return False


def _lower_ascii(data: bytes) -> bytes:
    # case_lowerb and constmap fold only A-Z; bytes.lower() does the same.
    return data.lower()


def load_rcpthosts(ctrl: ControlDir) -> Rcpthosts:
    lines = ctrl.readfile("rcpthosts")
    if lines is None:
        return Rcpthosts(hosts=None)
    hosts = frozenset(_lower_ascii(_latin1(line)) for line in lines)
    try:
        more: Reader | None = Reader.open(f"{ctrl.path}/morercpthosts.cdb")
    except FileNotFoundError:
        more = None
    except (OSError, CdbError) as exc:
        raise TempFail("unable to read control/morercpthosts.cdb") from exc
    return Rcpthosts(hosts=hosts, more=more)


def bmf_listed(badmailfrom: frozenset[bytes] | None, addr: bytes) -> bool:
    """bmfcheck(): the whole address, or ``@host`` after its last ``@``, case-folded."""
    if not badmailfrom:
        return False
    if addr.lower() in badmailfrom:
        return True
    at = addr.rfind(b"@")
    return at >= 0 and addr[at:].lower() in badmailfrom


def relay_hack(addr: bytes) -> bool:
    """addrrelay() of relay-reject.patch: ``@``, ``%`` or ``!`` before the last ``@``.

    Without an ``@`` the whole address counts as the local part.
    """
    at = addr.rfind(b"@")
    local = addr if at < 0 else addr[:at]
    return any(ch in local for ch in b"@%!")


def parse_databytes(text: str) -> int:
    """scan_ulong then the store into an unsigned int; all-ones is kept one lower."""
    value = scan_ulong(text)[0] % _UINT
    return value - 1 if value == _UINT - 1 else value


@dataclass(frozen=True, kw_only=True)
class SmtpdConfig:
    """Everything qmail-smtpd's setup() reads, for one connection."""

    greeting: bytes
    liphost: bytes | None
    timeout: int
    rcpthosts: Rcpthosts
    badmailfrom: frozenset[bytes] | None
    databytes: int
    remoteip: bytes = b"unknown"
    local: bytes = b"unknown"
    remotehost: bytes = b"unknown"
    remoteinfo: bytes | None = None
    relayclient: bytes | None = None
    relay_reject: bool = False
    date_localtime: bool = False
    is_me: Callable[[IPv4], bool] = field(default=lambda ip: ip == (0, 0, 0, 0))


def _c_int(value: int) -> int:
    """control_readint stores an unsigned long into an int."""
    value %= _UINT
    return value - _UINT if value >= 2**31 else value


def load_config(
    home: Path,
    env: Mapping[str, str],
    *,
    ipme: frozenset[IPv4] = frozenset({(0, 0, 0, 0)}),
    patches: frozenset[str] = frozenset(),
) -> SmtpdConfig:
    """setup(): raises :class:`TempFail` where qmail says "unable to read controls"."""
    ctrl = ControlDir(f"{home}/control")
    greeting = ctrl.rldef("smtpgreeting", True, None)
    if greeting is None:
        raise TempFail("no control/smtpgreeting and no control/me")
    liphost = ctrl.rldef("localiphost", True, None)
    timeout = _c_int(ctrl.readint("timeoutsmtpd", 1200))
    rcpthosts = load_rcpthosts(ctrl)
    bmf = ctrl.readfile("badmailfrom")
    databytes = ctrl.readint("databytes", 0) % _UINT
    if "DATABYTES" in env:
        databytes = parse_databytes(env["DATABYTES"])
    elif databytes == _UINT - 1:
        databytes -= 1
    return SmtpdConfig(
        greeting=_latin1(greeting),
        liphost=None if liphost is None else _latin1(liphost),
        timeout=timeout if timeout > 0 else 1,
        rcpthosts=rcpthosts,
        badmailfrom=None if bmf is None else frozenset(_latin1(b).lower() for b in bmf),
        databytes=databytes,
        remoteip=env_bytes(env, "TCPREMOTEIP", default=b"unknown") or b"",
        local=env_bytes(env, "TCPLOCALHOST", "TCPLOCALIP", default=b"unknown") or b"",
        remotehost=env_bytes(env, "TCPREMOTEHOST", default=b"unknown") or b"",
        remoteinfo=env_bytes(env, "TCPREMOTEINFO"),
        relayclient=env_bytes(env, "RELAYCLIENT"),
        relay_reject="smtpd-relay-reject" in patches,
        date_localtime="date-localtime" in patches,
        is_me=ipme.__contains__,
    )
