"""``qmail-sim capture DOMAIN``: the DNS questions qmail-remote asks, asked and written down.

Run it on the mail server: it reads resolv.conf (``--resolv-conf``, default
/etc/resolv.conf), asks through it what dns.c asks for DOMAIN (ANY with its
CNAME walk, MX, the A of each exchanger, 512-byte buffer), and writes one
file (:mod:`harness.capture`) that ``qmail-sim reproduce --capture FILE``
reads on another machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.capture import capture, dump
from server.dns.resolvconf import SYSTEM_RESOLV_CONF

HELP = "ask the resolver what qmail-remote asks for a domain, write it for reproduce"
DESCRIPTION = """\
Ask the system resolver (resolv.conf, as glibc's res_query uses it) the
questions netqmail-1.06's qmail-remote asks for DOMAIN: ANY (following
CNAMEs), MX, then A for each mail exchanger, with qmail's 512-byte answer
buffer. Every packet exchange is recorded (server, UDP/TCP, rcode or no
answer or refused, the whole answer's size and records) with resolv.conf's
text and what qmail's dns.c made of it. Give the file to
'qmail-sim reproduce --capture FILE'.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("domain", metavar="DOMAIN")
    parser.add_argument(
        "--resolv-conf",
        type=Path,
        default=SYSTEM_RESOLV_CONF,
        metavar="FILE",
        help="the resolver configuration to use (default /etc/resolv.conf)",
    )
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write it")


def run(args: argparse.Namespace) -> int:
    try:
        text = args.resolv_conf.read_text(encoding="latin-1")
    except FileNotFoundError:
        text = ""  # res_init: no file is no settings
    except OSError as exc:
        print(f"qmail-sim capture: {exc}", file=sys.stderr)
        return 2
    data = capture(args.domain, text)
    out = dump(data)
    if args.output:
        args.output.write_text(out, encoding="utf-8")
        print("\n".join(data["dns_c"]))
    else:
        sys.stdout.write(out)
    return 0
