"""qmail-remote: ``qmail-remote host sender recip...``, the message on stdin (qmail-remote(8)).

:func:`deliver` is the whole program as a function of its inputs and
injected world (DNS, connector, lock/tcpto, this machine's addresses, time,
pid); it returns exactly what qmail-remote writes to stdout: recipient
reports ``r``/``h``/``s`` and one message report ``K``/``Z``/``D``, each ending
in NUL. :func:`main` wires it to the real world and always exits 0, as
qmail-remote does. qmail-rspawn's :class:`~server.remote.rspawn.RemoteChannel`
calls :func:`deliver` in-process.

The order of qmail-remote.c's main(): controls; smtproutes; the sender's
local part quoted; each recipient's domain canonicalised by dns_cname (not
when routed) — a soft failure there ends everything with ``CNAME lookup
failed temporarily``; the host's addresses by dns_mxip (dns_ip when routed);
the preference of the best MX that is this machine (``prefme``), so that only
better ones are tried (none when every recipient domain was an alias, or when
routed); then each address in order, skipping those lock/tcpto holds, until
one connects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from server.control import ControlDir
from server.dns.qmaildns import DnsHard, DnsSoft, QmailDns
from server.errors import QmailFailure
from server.net import Connection, Connector
from server.programs import ProgramContext
from server.quote import quote_bytes
from server.remote import replies as R
from server.remote.routes import SmtpRoutes
from server.remote.smtpclient import Finished, Send, SmtpClient
from server.remote.tcpto import Tcpto

_ULONG = 1 << 64


@dataclass(frozen=True, kw_only=True)
class RemoteControls:
    """What getcontrols() reads."""

    helohost: str
    timeoutremote: int = 1200
    timeoutconnect: int = 60
    routes: SmtpRoutes

    @classmethod
    def read(cls, control: ControlDir) -> RemoteControls | None:
        """None where qmail-remote says ``Unable to read control files``."""
        try:
            helohost = control.rldef("helohost", True, None)
            if helohost is None:
                return None
            return cls(
                helohost=helohost,
                timeoutremote=control.readint("timeoutremote", 1200),
                timeoutconnect=control.readint("timeoutconnect", 60),
                routes=SmtpRoutes(control.readfile("smtproutes")),
            )
        except QmailFailure:
            return None


@dataclass(kw_only=True)
class World:
    """Everything qmail-remote gets from outside besides argv and stdin."""

    dns: QmailDns
    connector: Connector
    tcpto: Tcpto
    local_ips: Sequence[str]
    now: int
    pid: int


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def addrmangle(address: str, dns: QmailDns, cname: bool) -> tuple[bytes, bool]:
    """(address for the envelope, whether it counts as an alias). Raises DnsSoft."""
    at = address.rfind("@")
    if at < 0:
        return to_bytes(address), cname
    box, host = address[:at], address[at + 1 :]
    alias = cname
    if cname:
        host, loops = dns.dns_cname(host)
        if loops == 0:
            alias = False
    return quote_bytes(to_bytes(box)) + b"@" + to_bytes(host), alias


def _addresses(host: str, relay: bool, world: World) -> list[tuple[str, int]] | bytes:
    """The (ip, pref) list to try, or the final report when there is none."""
    random = (world.now + (world.pid << 16)) % _ULONG
    try:
        if relay:
            found, soft = world.dns.dns_ip(host), False
        else:
            found, soft = world.dns.dns_mxip(host, random)
    except DnsSoft:
        return R.DNS_TEMP.encode()
    except DnsHard:
        return R.perm_dns(to_bytes(host))
    if not found:
        return (R.DNS_TEMP if soft else R.NOMX).encode()
    return [(ix.ip, ix.pref) for ix in found]


def _prefme(ips: list[tuple[str, int]], relay: bool, allaliases: bool, mine: set[str]) -> int:
    prefme = 100000
    for ip, pref in ips:
        if ip in mine and pref < prefme:
            prefme = pref
    if relay:
        prefme = 300000
    if allaliases:
        prefme = 500000
    return prefme


def deliver(
    host: str,
    sender: str,
    recipients: Sequence[str],
    read_message: Callable[[], bytes],
    controls: RemoteControls,
    world: World,
) -> bytes:
    """Run qmail-remote; return what it prints."""
    route = controls.routes.lookup(host)
    relay = route.relay is not None
    if route.relay is not None:
        host = route.relay
    mangled_sender, _ = addrmangle(sender, world.dns, False)
    mangled: list[bytes] = []
    allaliases = True
    for recipient in recipients:
        try:
            address, alias = addrmangle(recipient, world.dns, not relay)
        except DnsSoft:
            return R.DNSCANON.encode() + b"\0"
        mangled.append(address)
        allaliases = allaliases and alias
    ips = _addresses(host, relay, world)
    if isinstance(ips, bytes):
        return ips + b"\0"
    prefme = _prefme(ips, relay, allaliases, {"0.0.0.0", *world.local_ips})
    if not any(pref < prefme for _, pref in ips):
        return R.AMBIGMX.encode() + b"\0"
    candidates = [ip for ip, pref in ips if pref < prefme]
    connected = _connect(candidates, route.port, controls, world)
    if connected is None:
        return R.NOCONN.encode() + b"\0"
    ip, conn = connected
    client = SmtpClient(
        partner=ip,
        helohost=to_bytes(controls.helohost),
        sender=mangled_sender,
        recipients=mangled,
        message=read_message,
    )
    return converse(client, conn, float(controls.timeoutremote))


def _connect(
    candidates: list[str], port: int, controls: RemoteControls, world: World
) -> tuple[str, Connection] | None:
    """The first address that lock/tcpto allows and that accepts a connection."""
    for ip in candidates:
        if world.tcpto.timed_out(ip):
            continue
        try:
            conn = world.connector.connect(ip, port, timeout=float(controls.timeoutconnect))
        except TimeoutError:
            world.tcpto.error(ip, True)  # only timeouts count (errno == error_timeout)
            continue
        except OSError:
            world.tcpto.error(ip, False)
            continue
        world.tcpto.error(ip, False)
        return ip, conn
    return None


def converse(client: SmtpClient, conn: Connection, timeout: float) -> bytes:
    """Drive the SMTP core over one connection until it finishes."""
    try:
        while True:
            event = client.next_event()
            if isinstance(event, Finished):
                return event.output
            if isinstance(event, Send):
                try:
                    conn.send(event.data)
                except OSError:
                    client.send_failed()
                else:
                    client.sent()
                continue
            try:
                data = conn.recv(timeout)
            except OSError:  # TimeoutError included
                client.connection_lost()
                continue
            if data:
                client.receive_data(data)
            else:
                client.connection_lost()
    finally:
        conn.close()


def run(
    argv: Sequence[str],
    read_message: Callable[[], bytes],
    ctx: ProgramContext,
    world: World,
) -> bytes:
    """qmail-remote's main() from argv on: usage and controls, then :func:`deliver`."""
    if len(argv) < 4:
        return R.USAGE.encode() + b"\0"
    if not ctx.home.is_dir():
        return R.CHDIR.encode() + b"\0"
    controls = RemoteControls.read(ControlDir(ctx.home / "control"))
    if controls is None:
        return R.CONTROL.encode() + b"\0"
    return deliver(argv[1], argv[2], argv[3:], read_message, controls, world)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    """The program: real sockets and resolver, the home's lock/tcpto and resolv.conf."""
    from server.remote.rspawn import real_world

    world = real_world(ctx)
    stdout.write(run(argv, stdin.read, ctx, world))
    stdout.flush()
    return 0
