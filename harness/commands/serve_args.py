"""``qmail-sim serve``'s command line: its options, and the addresses they take.

Addresses are IPv4 ``HOST:PORT`` (tcpserver is IPv4 only); --qmtp and
--qmqp take loopback ones only, --smtp and --pop3 others too, which
:func:`outside_loopback` then refuses unless --allow-nonloopback is given.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path


def loopback_address(text: str) -> tuple[str, int]:
    """IPv4 HOST:PORT, refusing anything but loopback (tcpserver is IPv4 only)."""
    host, port = ipv4_address(text)
    if not ipaddress.IPv4Address(host).is_loopback:
        raise argparse.ArgumentTypeError(f"{host} is not a loopback address")
    return host, port


def ipv4_address(text: str) -> tuple[str, int]:
    """IPv4 HOST:PORT (tcpserver is IPv4 only); :func:`outside_loopback` decides the rest."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{host!r} is not an IPv4 address") from None
    return str(address), int(port)


def outside_loopback(args: argparse.Namespace) -> int | None:
    """Loopback only, unless --allow-nonloopback: then one warning line per
    address. The exit code when refused (2, a usage error), else None."""
    for host, port in [*args.smtp, *args.pop3]:
        if ipaddress.IPv4Address(host).is_loopback:
            continue
        if not args.allow_nonloopback:
            print(
                f"qmail-sim serve: {host} is not a loopback address"
                " (give --allow-nonloopback to serve on it)",
                file=sys.stderr,
            )
            return 2
        print(
            f"qmail-sim serve: warning: serving on {host}:{port}, not loopback:"
            " whoever can reach it can talk to this home",
            file=sys.stderr,
            flush=True,
        )
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("home", metavar="HOME", type=Path, help="the qmail home to serve")
    parser.add_argument(
        "--smtp",
        action="append",
        default=[],
        type=ipv4_address,
        metavar="HOST:PORT",
        help="serve qmail-smtpd on this loopback address (repeatable)",
    )
    parser.add_argument(
        "--pop3",
        action="append",
        default=[],
        type=ipv4_address,
        metavar="HOST:PORT",
        help="serve qmail-popup ME checkpassword qmail-pop3d Maildir on this loopback "
        "address (repeatable); users from $QMAILSIM_PASSWORDS or HOME/.qmail-sim/passwords",
    )
    for kind, program in (("qmtp", "qmail-qmtpd"), ("qmqp", "qmail-qmqpd")):
        parser.add_argument(
            f"--{kind}",
            action="append",
            default=[],
            type=loopback_address,
            metavar="HOST:PORT",
            help=f"serve {program} on this loopback address (repeatable; "
            f"{'--rules applies, as for --smtp' if kind == 'qmtp' else 'no --rules'})",
        )
    parser.add_argument(
        "--allow-nonloopback",
        action="store_true",
        help="let --smtp/--pop3 name an address that is not loopback (e.g. 0.0.0.0 in a "
        "CI service container); a warning line says so",
    )
    parser.add_argument(
        "--send",
        action="store_true",
        help="also run qmail-send (local and remote delivery) in this process; "
        "its log lines go to stdout",
    )
    parser.add_argument(
        "--default-delivery",
        default="./Maildir/",
        metavar="DELIVERY",
        help="qmail-start's defaultdelivery for --send (default ./Maildir/)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="CDB",
        help="follow the tcprules cdb for SMTP clients, as tcpserver -x (e.g. RELAYCLIENT)",
    )
    parser.add_argument(
        "--localname",
        metavar="NAME",
        help="TCPLOCALHOST for SMTP connections, as tcpserver -l (default: unset)",
    )
    # serve_split's children: a queue service as qmailq, and qmail-smtpd as
    # qmaild queueing through it (not for users: serve starts them itself)
    parser.add_argument("--queue-service", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--queue-socket", type=Path, help=argparse.SUPPRESS)
    # a split serve's qmail-smtpd children share the socket their parent bound
    parser.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--handoff-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--handed-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=40,
        metavar="N",
        help="at most N connections at once on each listener, as tcpserver -c (default 40)",
    )
