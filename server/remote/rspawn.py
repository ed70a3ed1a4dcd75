"""qmail-rspawn: runs qmail-remote for qmail-send and folds its output into one report.

:class:`RemoteChannel` is the in-process channel (server.spawn.Channel): for
one recipient it runs qmail-remote (:func:`server.remote.program.deliver`)
for the recipient's domain and returns what qmail-rspawn.c's ``report()``
makes of the output. :func:`main` is ``bin/qmail-rspawn``, speaking
qmail-send's pipe protocol (spawn.c): it empties lock/tcpto, writes one byte
(the concurrency limit, conf-spawn's 120), then for each command ``delivery
number byte, message path NUL, sender NUL, recipient NUL`` answers ``delivery
number byte, report, NUL`` when that delivery is done; deliveries run in
parallel threads.

report() (qmail-rspawn.c): the letter comes from the first recipient report
when it is ``s`` (Z) or ``h`` (D), else from the message report; the text is
the first report's, followed by the second report's text when the message
report is not better than the recipient's.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from server import spawnpipe
from server.control import ControlDir
from server.dns.qmaildns import QmailDns
from server.dns.resolvconf import load as load_resolvconf
from server.dns.resolvconf import resolvconf_path
from server.dns.resolver import LibcResolver
from server.net import Connector, DnsTransport
from server.programs import ProgramContext
from server.remote import replies as R
from server.remote.program import RemoteControls, World, deliver
from server.remote.tcpto import Tcpto, clean
from server.spawn import DeliveryJob

_LETTERS = {1: b"K", 0: b"Z", -1: b"D"}


def report(output: bytes) -> bytes:
    """qmail-rspawn.c's report() for a qmail-remote that exited 0."""
    if not output:
        return R.RSPAWN_NO_OUTPUT.encode()
    result, start = -1, 0
    for k, byte in enumerate(output):
        if byte == 0:
            letter = output[start : start + 1]
            if letter in (b"K", b"Z"):
                result = 1 if letter == b"K" else 0
                break
            if letter == b"D":
                break
            start = k + 1
    orr = {b"s": 0, b"h": -1}.get(output[:1], result)
    folded = bytearray(_LETTERS[orr])
    first_nul = output.find(b"\0", 1)
    if first_nul < 0:
        return bytes(folded)
    folded += output[1:first_nul]
    k = first_nul + 1
    if result <= orr and k < len(output) and output[k : k + 1] in (b"Z", b"D", b"K"):
        end = output.find(b"\0", k + 1)
        folded += output[k + 1 : end if end >= 0 else len(output)]
    return bytes(folded)


def _pid(ctx: ProgramContext) -> int:
    return ctx.runtime.next_pid()


def make_world(
    ctx: ProgramContext,
    dns: DnsTransport,
    connector: Connector,
    resolvconf: Path | None,
    local_ips: Sequence[str],
) -> World:
    config = load_resolvconf(resolvconf_path(ctx.home, resolvconf))
    resolver = LibcResolver(config, dns, lambda: ctx.runtime.rng.getrandbits(16))
    pid = _pid(ctx)
    return World(
        dns=QmailDns(resolver, patched="qmail-103" in ctx.patches),
        connector=connector,
        tcpto=Tcpto(ctx.home / "queue" / "lock" / "tcpto", ctx.runtime.now, pid),
        local_ips=local_ips,
        now=ctx.runtime.now(),
        pid=pid,
    )


def real_world(ctx: ProgramContext) -> World:
    """Real sockets, the home's (or the system's) resolv.conf, this machine's addresses."""
    from server.dns.transport import SocketDnsTransport
    from server.remote.connect import SocketConnector, system_local_ips

    timeout = ControlDir(ctx.home / "control").readint("timeoutremote", 1200)
    return make_world(
        ctx, SocketDnsTransport(), SocketConnector(float(timeout)), None, system_local_ips()
    )


class RemoteChannel:
    """The remote channel qmail-send uses: one qmail-remote run per job, in-process."""

    def __init__(
        self,
        ctx: ProgramContext,
        *,
        dns: DnsTransport,
        connector: Connector,
        resolvconf: Path | None = None,
        local_ips: Sequence[str] | None = None,
    ) -> None:
        self.ctx = ctx
        self.dns = dns
        self.connector = connector
        self.resolvconf = resolvconf
        if local_ips is None:
            from server.remote.connect import system_local_ips

            local_ips = system_local_ips()
        self.local_ips = list(local_ips)

    def deliver(self, job: DeliveryJob) -> bytes:
        at = job.recipient.rfind("@")
        if at < 0:
            return spawnpipe.NO_HOST.encode()
        try:
            message = job.message.read_bytes()
        except OSError:
            return spawnpipe.OPEN.encode()
        try:
            world = make_world(self.ctx, self.dns, self.connector, self.resolvconf, self.local_ips)
            controls = RemoteControls.read(ControlDir(self.ctx.home / "control"))
            if controls is None:
                output = R.CONTROL.encode() + b"\0"
            else:
                host = job.recipient[at + 1 :]
                output = deliver(
                    host, job.sender, [job.recipient], lambda: message, controls, world
                )
        except Exception:
            # a crash of qmail-remote, as qmail-rspawn reports one
            self.ctx.stderr.write(traceback.format_exc().encode())
            return R.RSPAWN_CRASHED.encode()
        return report(output)


def _serve(channel: RemoteChannel, stdin: BinaryIO, stdout: BinaryIO, queue: Path) -> None:
    """spawn.c's loop (server.spawnpipe); ``queue`` is queue/mess."""

    def deliver(cmd: spawnpipe.Command) -> bytes:
        sender, recip = (b.decode("utf-8", "surrogateescape") for b in (cmd.sender, cmd.recipient))
        messid = cmd.messid.decode("utf-8", "surrogateescape")
        job = DeliveryJob(msgid=0, message=queue / messid, sender=sender, recipient=recip)
        return channel.deliver(job)

    spawnpipe.serve(stdin, stdout, deliver)


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    """bin/qmail-rspawn: qmail-send's remote spawner, talking on stdin/stdout."""
    from server.dns.transport import SocketDnsTransport
    from server.remote.connect import SocketConnector

    queue = ctx.home / "queue" / "mess"
    if not queue.is_dir():
        return 111
    clean(ctx.home / "queue" / "lock" / "tcpto")
    timeout = ControlDir(ctx.home / "control").readint("timeoutremote", 1200)
    channel = RemoteChannel(ctx, dns=SocketDnsTransport(), connector=SocketConnector(timeout))
    stdout.write(bytes([spawnpipe.AUTO_SPAWN]))  # spawn.c: the concurrency limit, first
    stdout.flush()
    _serve(channel, stdin, stdout, queue)
    return 0
