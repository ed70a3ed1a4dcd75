"""tcp-env [-rR] [-t timeout] program [arg ...]: qmail's TCP environment setter.

As tcp-env.c and tcp-env(1): when PROTO is not already ``TCP``, it takes the
addresses of the TCP connection on stdin and sets PROTO, TCPLOCALPORT,
TCPLOCALIP, TCPLOCALHOST, TCPREMOTEPORT, TCPREMOTEIP, TCPREMOTEHOST and (with
``-r``, the default, giving up after ``-t`` seconds, 30) TCPREMOTEINFO; then
it runs the program. Host names come from DNS PTR lookups made with
qmail's resolver (:mod:`server.dns`; the home's ``.qmail-sim/resolv.conf``
when it has one, else the system's), lower-cased; a temporary DNS failure
gives ``softdnserror``; no name removes the variable. Every failure exits 111
without a message, as tcp-env.c's die() does.

The program runs in this process when it is one of qmail's programs and the
context runs programs in-process (the simulator); otherwise as a process
with our stdin and stdout.
"""

from __future__ import annotations

import asyncio
import getopt
import os
import socket
import subprocess
from collections.abc import Mapping
from typing import BinaryIO

from server.dns.qmaildns import DnsHard, DnsSoft, QmailDns
from server.dns.resolvconf import load as load_resolvconf
from server.dns.resolvconf import resolvconf_path
from server.dns.resolver import LibcResolver
from server.dns.transport import SocketDnsTransport
from server.dns.wire import T_PTR
from server.errors import EXIT_TEMP
from server.programs import PROGRAMS, ProgramContext, run
from server.scan import scan_ulong
from server.tcp import ident
from server.tcp.environ import put

DEFAULT_TIMEOUT = 30  # tcp-env.c
SOFT = "softdnserror"


def dns_ptr(dns: QmailDns, ip: str) -> str | None:
    """dns.c's dns_ptr through qmail's resolver: the name, SOFT, or None (hard).

    DNS only, as qmail: /etc/hosts plays no part. The name is ``d.c.b.a.in-addr.arpa.``
    (iaafmt); the first PTR answer wins.
    """
    name = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
    try:
        walk = dns.resolve(name, T_PTR)
        while (found := dns.findname(walk, T_PTR)) is not None:
            if isinstance(found, str):
                return found
    except DnsSoft:
        return SOFT
    except DnsHard:
        return None
    return None


def system_dns(ctx: ProgramContext) -> QmailDns:
    """qmail's resolver over real sockets: the home's resolv.conf, else the system's."""
    config = load_resolvconf(resolvconf_path(ctx.home))
    rng = ctx.runtime.rng
    return QmailDns(LibcResolver(config, SocketDnsTransport(), lambda: rng.getrandbits(16)))


def reverse_name(dns: QmailDns, ip: str) -> str | None:
    """What tcp-env puts into TCP*HOST: the name lower-cased (case_lowers)."""
    name = dns_ptr(dns, ip)
    return None if name is None else name.lower()


def connection_env(
    env: Mapping[str, str],
    sock: socket.socket,
    dns: QmailDns,
    remote_info: bool,
    timeout: int,
) -> dict[str, str]:
    """tcp-env's environment for the connection ``sock``."""
    out = dict(env)
    if out.get("PROTO") == "TCP":  # already set up: trust it (tcp-env(1))
        return out
    local_ip, local_port = sock.getsockname()[:2]
    remote_ip, remote_port = sock.getpeername()[:2]
    out["PROTO"] = "TCP"
    out["TCPLOCALPORT"] = str(local_port)
    out["TCPLOCALIP"] = local_ip
    put(out, "TCPLOCALHOST", reverse_name(dns, local_ip))
    out["TCPREMOTEPORT"] = str(remote_port)
    out["TCPREMOTEIP"] = remote_ip
    put(out, "TCPREMOTEHOST", reverse_name(dns, remote_ip))
    out.pop("TCPREMOTEINFO", None)
    if remote_info:
        info = asyncio.run(ident.lookup((remote_ip, remote_port), (local_ip, local_port), timeout))
        put(out, "TCPREMOTEINFO", info)
    return out


def _options(argv: list[str]) -> tuple[bool, int, list[str]]:
    opts, rest = getopt.getopt(argv[1:], "rRt:")
    remote_info, timeout = True, DEFAULT_TIMEOUT
    for opt, arg in opts:
        if opt == "-t":
            timeout = scan_ulong(arg)[0]
        else:
            remote_info = opt == "-r"
    return remote_info, timeout, rest


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    try:
        remote_info, timeout, program = _options(argv)
    except getopt.GetoptError:
        return EXIT_TEMP
    if not program:
        return EXIT_TEMP
    try:
        if env.get("PROTO") == "TCP":
            new_env = dict(env)
        else:
            with socket.socket(fileno=os.dup(stdin.fileno())) as sock:
                new_env = connection_env(env, sock, system_dns(ctx), remote_info, timeout)
    except (OSError, ValueError):
        return EXIT_TEMP
    name = os.path.basename(program[0])
    if ctx.inprocess and name in PROGRAMS:
        return run(name, [name, *program[1:]], new_env, stdin, stdout, ctx)
    stdout.flush()
    try:
        code = subprocess.run(program, env=new_env, stdin=stdin, stdout=stdout).returncode
    except OSError:  # execvp failed: die()
        return EXIT_TEMP
    return code if code >= 0 else EXIT_TEMP
