"""The ``qmail-sim`` command. Each subcommand lives in :mod:`harness.commands`.

Subcommand modules are imported only when used, so ``qmail-sim setup`` does not
pay for loading the simulator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

#: subcommand -> module under harness.commands, in the order --help lists them.
COMMANDS: dict[str, str] = {
    "run": "run",
    "show": "show",
    "setup": "setup",
    "serve": "serve",
    "dns": "dns",
    "compare": "compare",
    "record": "record",
    "reproduce": "reproduce",
    "capture": "capture",
}

#: One line per subcommand for the top-level --help, so it needs no imports.
SUMMARIES: dict[str, str] = {
    "run": "run scenario files (default: the bundled suite) against a target",
    "show": "print a timeline of each message in a scenario",
    "setup": "make a qmail home (make setup + config-fast)",
    "serve": "run the live server (SMTP, POP3, delivery) for a home",
    "dns": "serve a zone file as a scripted fake DNS on loopback",
    "compare": "run scenarios on the simulator and on a reference, show differences",
    "record": "record an SMTP or POP3 session as a scenario file",
    "reproduce": "build a scenario that reproduces a deferral from a qmail log line",
    "capture": "ask the resolver what qmail-remote asks for a domain, write it for reproduce",
}

DESCRIPTION = """\
qmail-sim: a test harness and protocol-conformance simulator for qmail
(netqmail-1.06). Scenario files describe control files, DNS, remote peers and
SMTP/POP3 sessions; qmail-sim replays them against a simulated qmail, our
server as live processes, or a real qmail home, and checks the queue,
Maildirs, mboxes, bounces and logs.
"""


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"harness.commands.{COMMANDS[name]}")
    except ModuleNotFoundError as exc:
        if exc.name == f"harness.commands.{COMMANDS[name]}":
            return None
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qmail-sim",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, help=SUMMARIES[name], add_help=False)
            continue
        module = _module(name)
        desc = getattr(module, "DESCRIPTION", None) if module else "not built yet"
        child = sub.add_parser(
            name,
            help=SUMMARIES[name],
            description=desc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if module is not None:
            module.add_arguments(child)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = _module(args.command)
    if module is None:
        print(f"qmail-sim {args.command}: not built yet", file=sys.stderr)
        return 111
    code: int = module.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
