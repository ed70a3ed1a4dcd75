"""``qmail-sim setup DIR``: make a qmail home, as ``make setup`` + ``config-fast``."""

from __future__ import annotations

import argparse
from pathlib import Path

from server.home import setup
from server.programs import PATCHES

HELP = "make a qmail home (make setup + config-fast)"
DESCRIPTION = """\
Create a qmail home at DIR the way netqmail-1.06's `make setup` and
`config-fast HOST` do: alias/ bin/ boot/ control/ doc/ man/ queue/ users/,
the split queue with lock/tcpto, lock/sendmutex and the lock/trigger pipe,
control/me, defaultdomain, plusdomain, locals and rcpthosts, and the three
alias files. bin/ holds qmail's programs, run by qmail-sim; boot/ holds
short start scripts (home, proc, binm1..3 and their +df variants). doc/ and
man/ are made empty: their text is qmail's, not ours.

Differences from a root install: no owners or setuid bits (bin/qmail-queue
is 0711, not 04711); everything belongs to whoever ran setup. The chosen
--patch names are kept in DIR/.qmail-sim/patches.

Running it again on an existing home is safe: queue contents, Maildirs and
control files are kept; bin/ is rewritten.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", type=Path, help="the home to make or refresh")
    parser.add_argument(
        "--me",
        metavar="HOST",
        help="fully qualified host name for config-fast (control/me and the files it feeds)",
    )
    parser.add_argument(
        "--patch",
        action="append",
        choices=PATCHES,
        metavar="NAME",
        help=f"switch a patch on; repeatable ({', '.join(PATCHES)}). "
        "Without --patch an existing home keeps its recorded choice.",
    )


def run(args: argparse.Namespace) -> int:
    setup(args.dir, me=args.me, patches=args.patch)
    return 0
