"""tcpserver: accept TCP connections and run a program (or a handler) for each.

An asyncio version of ucspi-tcp 0.88's tcpserver (tcpserver(1), tcpserver.c).
For each connection it writes the ``-B`` banner, builds the environment of
tcp-environ(5) (:mod:`server.tcp.environ`), consults the ``-x`` rules cdb
(:mod:`server.tcp.rules`) — a ``deny`` closes the connection, an ``allow``
adds its variables — and then either

* runs ``program args...`` with the socket as its stdin and stdout (a
  subprocess; PATH is looked up in the child's environment, as pathexec
  does), or
* awaits an in-process ``handler(reader, writer, env)``, so the live server
  runs qmail-smtpd's core without a process per connection.

``-c N`` limits the connections handled at once: like tcpserver we stop
calling accept() while N are running, so further clients wait in the
kernel's backlog. ``-v`` logs ``status``, ``pid``, ``ok``/``deny`` and
``end`` lines as tcpserver does; an in-process handler or a denied
connection has no process of its own, so its "pid" is a connection serial;
a program's lines carry its pid, as tcpserver's child logs them.

``-r`` (the default) asks the client's identd for TCPREMOTEINFO
(:mod:`server.tcp.ident`), giving up after ``-t`` seconds (26).

``-g``/``-u``/``-U`` switch ids after binding, as tcpserver does (the
command line only; the Python API never changes the process's ids).

``-p`` keeps a client's host name only when a forward lookup of it lists
the client's address; ``-O`` (default) clears IP options. Host
names (``-h``, the default) come from a resolver you pass in; the command
line looks up PTR records in DNS (:func:`dns_resolver`). IPv4 only, as 0.88.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401  (loaded before -u: the stdlib may be unreadable after)
import getopt
import os
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from server.dns.qmaildns import DnsHard, DnsSoft, QmailDns
from server.errors import EXIT_OK, EXIT_PERM, EXIT_TEMP
from server.programs import ProgramContext
from server.scan import scan_ulong
from server.strerr import error_str
from server.tcp.listener import (
    DEFAULT_LIMIT,
    Config,
    Forward,
    Handler,
    Resolver,
    RulesUnreadable,
    TcpServer,
    check_rules,
    rules_env,
    serve,
)
from server.tcp.tcpenv import SOFT, dns_ptr, system_dns

__all__ = [
    "DEFAULT_LIMIT",
    "Config",
    "Forward",
    "Handler",
    "Resolver",
    "RulesUnreadable",
    "TcpServer",
    "check_rules",
    "main",
    "parse_args",
    "rules_env",
    "serve",
]

FATAL = "tcpserver: fatal: "
USAGE = (
    "tcpserver: usage: tcpserver [ -1UXpPhHrRoOdDqQv ] [ -c limit ] [ -x rules.cdb ] "
    "[ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] "
    "[ -t timeout ] host port program"
)
OPTSTRING = "dDvqQhHrR1UXx:t:u:g:l:b:B:c:pPoO"


# --- the program -------------------------------------------------------------


class UsageError(Exception):
    pass


def _ulong(text: str) -> int:
    """scan_ulong: leading digits, 0 when there are none."""
    return scan_ulong(text)[0]


def _apply_flag(config: Config, opt: str, arg: str, env: Mapping[str, str]) -> None:
    flags: dict[str, tuple[str, object]] = {
        "-X": ("allow_missing_rules", True),
        "-v": ("verbosity", 2),
        "-q": ("verbosity", 0),
        "-Q": ("verbosity", 1),
        "-H": ("remote_host", False),
        "-h": ("remote_host", True),
        "-D": ("nodelay", True),
        "-d": ("nodelay", False),
        "-1": ("print_port", True),
        "-p": ("paranoid", True),
        "-P": ("paranoid", False),
        "-O": ("kill_ip_options", True),
        "-o": ("kill_ip_options", False),
        "-r": ("remote_info", True),
        "-R": ("remote_info", False),
    }
    if opt in flags:
        setattr(config, *flags[opt])
    elif opt == "-c":
        config.limit = _ulong(arg)
    elif opt == "-b":
        config.backlog = _ulong(arg)
    elif opt == "-x":
        config.rules = Path(arg)
    elif opt == "-B":
        config.banner = os.fsencode(arg)
    elif opt == "-l":
        config.local_name = arg
    elif opt == "-t":
        config.ident_timeout = _ulong(arg)
    elif opt == "-u":
        config.uid = _ulong(arg)
    elif opt == "-g":
        config.gid = _ulong(arg)
    elif opt == "-U":  # $UID and $GID, each only when set
        config.uid = _ulong(env["UID"]) if "UID" in env else config.uid
        config.gid = _ulong(env["GID"]) if "GID" in env else config.gid


def parse_args(
    argv: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[Config, list[str]]:
    """tcpserver's command line: options, host, port, program and its args."""
    try:
        opts, rest = getopt.getopt(list(argv[1:]), OPTSTRING)
    except getopt.GetoptError as exc:
        raise UsageError(str(exc)) from exc
    config = Config(remote_info=True)  # -r is tcpserver's default
    for opt, arg in opts:
        _apply_flag(config, opt, arg, env or {})
    if len(rest) < 3:
        raise UsageError("missing host, port or program")
    host, port_text, program = rest[0], rest[1], rest[2:]
    config.host = "0.0.0.0" if host in ("", "0") else host
    config.port = _port(port_text)
    return config, program


def _port(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return socket.getservbyname(text, "tcp")
    except OSError as exc:
        raise LookupError(f"{FATAL}unable to figure out port number for {text}") from exc


def dns_resolver(dns: QmailDns) -> Resolver:
    """The command line's -h: a PTR lookup in DNS, as tcpserver's dns_name4.

    DNS only (no /etc/hosts), through qmail's resolver and the home's
    resolv.conf, so a scripted fake DNS answers it too. Any failure, soft or
    hard, leaves the name unknown, as in tcpserver.
    """

    async def resolve(ip: str) -> str | None:
        name = await asyncio.get_running_loop().run_in_executor(None, dns_ptr, dns, ip)
        return None if name is None or name == SOFT else djb_todot(ntop_labels(name))

    return resolve


def dns_forward(dns: QmailDns) -> Forward:
    """The command line's -p check: the name's A records (dns_ip4)."""

    def lookup(name: str) -> list[str]:
        try:
            return [ipmx.ip for ipmx in dns.dns_ip(name)]
        except (DnsSoft, DnsHard):
            return []

    async def forward(name: str) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(None, lookup, name)

    return forward


def ntop_labels(text: str) -> list[bytes]:
    """Undo ns_name_ntop's escapes (``\\.``, ``\\DDD``): the name's raw labels."""
    labels: list[bytes] = []
    label = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text[i + 1 : i + 4].isdigit() and len(text[i + 1 : i + 4]) == 3:
            label.append(int(text[i + 1 : i + 4]) & 0xFF)
            i += 4
            continue
        if ch == "\\" and i + 1 < len(text):
            ch, i = text[i + 1], i + 1
        elif ch == ".":
            labels.append(bytes(label))
            label.clear()
            i += 1
            continue
        label += ch.encode("latin-1", "replace")
        i += 1
    if label:
        labels.append(bytes(label))
    return labels


_DJB_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


def djb_todot(labels: list[bytes]) -> str:
    """djbdns' dns_domain_todot_cat, which tcpserver's names go through:
    letters lower-cased, anything but ``a-z0-9-_`` as ``\\ooo`` (octal)."""
    parts = []
    for label in labels:
        out = []
        for byte in label.lower():
            out.append(chr(byte) if byte in _DJB_PLAIN else f"\\{byte:03o}")
        parts.append("".join(out))
    return ".".join(parts) if parts else "."


def _stderr_logger(stream: BinaryIO) -> Callable[[str], None]:
    def log(line: str) -> None:
        stream.write(os.fsencode(line + "\n"))
        stream.flush()

    return log


def _drop_privileges(config: Config) -> str | None:
    """prot_gid then prot_uid, after binding; the fatal message on failure."""
    try:
        if config.gid:
            os.setgroups([config.gid])
            os.setgid(config.gid)
    except OSError as exc:
        return f"{FATAL}unable to set gid: {error_str(exc.errno)}"
    try:
        if config.uid:
            os.setuid(config.uid)
    except OSError as exc:
        return f"{FATAL}unable to set uid: {error_str(exc.errno)}"
    return None


async def _run_program(config: Config, program: list[str], stdout: BinaryIO) -> int:
    try:
        server = TcpServer(config, program)
    except OSError as exc:
        config.log(f"{FATAL}unable to bind: {error_str(exc.errno)}")
        return EXIT_TEMP
    failure = _drop_privileges(config)
    if failure is not None:
        config.log(failure)
        await server.close()
        return EXIT_TEMP
    if config.print_port:
        stdout.write(f"{server.port}\n".encode())
        stdout.flush()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)  # tcpserver: sigterm -> _exit(0)
    try:
        server.start()
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await server.close()
    return EXIT_OK


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    log = _stderr_logger(ctx.stderr)
    try:
        config, program = parse_args(argv, env)
    except UsageError:
        log(USAGE)
        return EXIT_PERM
    except LookupError as exc:
        log(str(exc))
        return EXIT_TEMP
    config.base_env = dict(env)
    config.log = log if config.verbosity else (lambda line: None)
    dns = system_dns(ctx)
    config.resolver = dns_resolver(dns)
    config.forward = dns_forward(dns)
    return asyncio.run(_run_program(config, program, stdout))
