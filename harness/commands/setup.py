"""``qmail-sim setup DIR``: make a qmail home, as ``make setup`` + ``config-fast``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.home import SetupError, check_target, home_kind, make_mini, setup
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

Run as root on a system with qmail's users and groups (INSTALL.ids: alias,
qmaild, qmaill, qmailp, qmailq, qmailr, qmails; nofiles, qmail), it makes a
split home: hier.c's owners, group qmail, and bin/qmail-queue a small
compiled program, setuid qmailq (04711), that runs our qmail-queue (it
needs cc; see docs/security.md). Otherwise, or with --one-user, a one-user
home: no owners or setuid bits (bin/qmail-queue is 0711, not 04711);
everything belongs to whoever ran setup, and one line on stderr says why.
The chosen --patch names are kept in DIR/.qmail-sim/patches. --localtime ZONE
copies /usr/share/zoneinfo/ZONE to DIR/.qmail-sim/localtime: the zone file
that stands for /etc/localtime for the home's programs when TZ is unset
(date-localtime); without it they read the host's /etc/localtime.

Running it again on an existing home is safe: queue contents, Maildirs and
control files are kept; bin/ is rewritten. A non-empty directory that is not
a home of ours is refused unless --force is given.

With --mini HUB (repeatable) it makes a "mini-qmail" home (qmail-qmqpc(8)):
bin/qmail-queue becomes a symbolic link to qmail-qmqpc and
control/qmqpservers lists the HUB addresses, so qmail-inject, sendmail and
every other program here hand their mail by QMQP (port 628) to the first hub
that answers, where qmail-qmqpd runs under tcpserver. Setup run again
without --mini makes bin/qmail-queue the home's own again.
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
    parser.add_argument(
        "--localtime",
        metavar="ZONE",
        help="the zone (under /usr/share/zoneinfo) standing for /etc/localtime in this home",
    )
    parser.add_argument(
        "--one-user",
        action="store_true",
        help="a one-user home even as root with qmail's users",
    )
    parser.add_argument(
        "--mini",
        action="append",
        metavar="HUB",
        help="a mini-qmail home queueing by QMQP to HUB (an IP address; repeatable)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="add qmail's tree to a non-empty directory that is not a home of ours",
    )


def run(args: argparse.Namespace) -> int:
    home: Path = args.dir
    ids, why = None, ""
    try:
        check_target(home, force=args.force)
        if args.one_user:
            ids, why = None, "--one-user"
        else:
            ids, why = home_kind(home)
        note = setup(home, me=args.me, patches=args.patch, ids=ids)
        if args.localtime is not None:
            _localtime(home, args.localtime)
    except SetupError as exc:
        _say(f"{exc} ({why})" if why else str(exc))
        return 100
    except (OSError, ValueError) as exc:
        _say(f"cannot make {home}: {exc}")
        return 111
    if args.mini:
        try:
            make_mini(home, args.mini)
        except OSError as exc:
            _say(f"cannot make {home} a mini-qmail home: {exc}")
            return 111
    if ids is None:
        _say(f"a one-user home ({why})")
    elif note is not None:
        _say(note)
    return 0


def _localtime(home: Path, zone: str) -> None:
    """DIR/.qmail-sim/localtime: a copy of the zone file (ValueError: no such zone)."""
    import shutil

    from harness.targets.zone import zone_file
    from server.date822 import LOCALTIME_FILE

    target = home / LOCALTIME_FILE
    shutil.copyfile(zone_file(zone), target)
    target.chmod(0o644)


def _say(line: str) -> None:
    print(f"qmail-sim setup: {line}", file=sys.stderr)
