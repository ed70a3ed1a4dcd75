"""The qmail programs, by qmail's names, and how to run one.

Every program is a module with::

    def main(argv: list[str], env: Mapping[str, str], stdin: BinaryIO,
             stdout: BinaryIO, ctx: ProgramContext) -> int

``argv[0]`` is the program's name, as in C. ``env`` is read-only; the
program's exit code is returned, never passed to ``sys.exit`` inside the
module, so the harness can call it in-process. ``python -m server NAME ARGS``
(and each generated ``HOME/bin/NAME``) runs it as a process.

:data:`PROGRAMS` maps qmail's program names (hier.c) to the module that
implements it; a program whose module does not exist yet exits 111 with a
one-line message, so nothing pretends to work.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from server.errors import EXIT_TEMP
from server.runtime import PidCounter, Runtime, VirtualClock

#: Patches a home can switch on (recorded by ``qmail-sim setup --patch``).
PATCHES = ("qmail-103", "date-localtime", "smtpd-relay-reject")
PATCHES_FILE = ".qmail-sim/patches"
#: Names the socket of a queue service that programs run as processes queue
#: through instead of bin/qmail-queue (the simulator run as root: harness.simqueue).
QUEUE_SOCKET_FILE = ".qmail-sim/queue-socket"


class Main(Protocol):
    def __call__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        stdin: BinaryIO,
        stdout: BinaryIO,
        ctx: ProgramContext,
    ) -> int: ...


@dataclass
class ProgramContext:
    """What a program gets besides argv/env/stdin/stdout.

    ``inprocess`` says whether programs this one starts (qmail-smtpd starting
    qmail-queue, qmail-local starting a ``|command``) should be called as
    Python functions (the simulator, the live server) or run as processes
    from ``HOME/bin`` (a program started by tcpserver or by real qmail).
    ``fds`` holds extra descriptors a program expects beyond 0/1/2, e.g. fd 3
    for checkpassword.
    """

    home: Path
    runtime: Runtime
    stderr: BinaryIO
    patches: frozenset[str] = frozenset()
    inprocess: bool = True
    fds: dict[int, BinaryIO] = field(default_factory=dict)
    #: The current directory of an in-process program (None: the process's
    #: own). checkpassword "chdir"s to the user's home by setting it, so that
    #: ``qmail-pop3d Maildir`` finds ``HOME/Maildir`` without a real chdir.
    cwd: Path | None = None
    #: A queue service (server.queue.service) to queue through instead of
    #: running qmail-queue: ``qmail-sim serve`` as root gives it to its
    #: qmail-smtpd, which runs as qmaild and may not write the queue itself.
    queue_socket: Path | None = None

    def path(self, name: str | Path) -> Path:
        """``name`` taken from the program's current directory (``cwd`` when set)."""
        return Path(name) if self.cwd is None else self.cwd / name


#: qmail's programs (hier.c) and ours that run them.
PROGRAMS: dict[str, str] = {
    "qmail-smtpd": "server.smtpd.program",
    "qmail-queue": "server.queue.program",
    "qmail-send": "server.send.program",
    "qmail-start": "server.send.start",
    "qmail-clean": "server.send.clean",
    "qmail-qstat": "server.send.qstat",
    "qmail-qread": "server.send.qread",
    "qmail-lspawn": "server.local.lspawn",
    "qmail-local": "server.local.program",
    "qmail-getpw": "server.local.getpw",
    "qmail-newu": "server.local.newu",
    "qmail-pw2u": "server.local.pw2u",
    "qmail-rspawn": "server.remote.rspawn",
    "qmail-remote": "server.remote.program",
    "qmail-tcpto": "server.remote.tcpto",
    "qmail-tcpok": "server.remote.tcpok",
    "qmail-newmrh": "server.smtpd.newmrh",
    "qmail-inject": "server.inject.program",
    "sendmail": "server.inject.sendmail",
    "predate": "server.inject.predate",
    "datemail": "server.inject.datemail",
    "mailsubj": "server.inject.mailsubj",
    "qmail-popup": "server.pop3.popup",
    "qmail-pop3d": "server.pop3.pop3d",
    "qmail-showctl": "server.showctl",
    "maildirmake": "server.maildirmake",
    "maildir2mbox": "server.local.maildir2mbox",
    "maildirwatch": "server.local.maildirwatch",
    "splogger": "server.send.splogger",
    "preline": "server.local.preline",
    "forward": "server.local.forward",
    "condredirect": "server.local.condredirect",
    "bouncesaying": "server.local.bouncesaying",
    "except": "server.local.except_",
    "qreceipt": "server.local.qreceipt",
    "qbiff": "server.local.qbiff",
    "qsmhook": "server.local.qsmhook",
    "tcp-env": "server.tcp.tcpenv",
    "qmail-qmqpc": "server.qmqp.qmqpc",
    "qmail-qmqpd": "server.qmqp.qmqpd",
    "qmail-qmtpd": "server.qmqp.qmtpd",
    "qail": "server.local.qail",
    "elq": "server.local.elq",
    "pinq": "server.local.pinq",
}

#: Programs of ours that are not qmail's (ucspi-tcp and test helpers). They run
#: through ``python -m server NAME`` but are not put into a home's ``bin/``.
EXTRA_PROGRAMS: dict[str, str] = {
    "tcpserver": "server.tcp.tcpserver",
    "tcprules": "server.tcp.tcprules",
    "tcprulescheck": "server.tcp.tcprulescheck",
    "checkpassword": "server.pop3.checkpassword",
}


class NotBuilt(Exception):
    pass


def with_counting_pids(ctx: ProgramContext) -> ProgramContext:
    """In one process, each qmail-local and qmail-queue run still needs its own
    "pid" (Maildir names are time.pid.host; qp numbers), as each is a child of
    its own in qmail: count up from ours. A runtime that already counts (the
    simulator's) is kept."""
    if ctx.runtime.next_pid is not os.getpid:
        return ctx
    runtime = dataclasses.replace(ctx.runtime, next_pid=PidCounter(os.getpid() + 1))
    return dataclasses.replace(ctx, runtime=runtime)


def real_pids(runtime: Runtime) -> bool:
    """Whether ``runtime`` is a real process's (its pids stand for processes),
    not the simulator's, whose virtual clock and counted pids make every run
    the same: a Maildir name then needs a real pid to be unique."""
    return not isinstance(runtime.clock, VirtualClock)


def is_ours(name: str) -> bool:
    """Whether ``name`` (a base name) is one of our programs, qmail's or extra."""
    return name in PROGRAMS or name in EXTRA_PROGRAMS


def load(name: str) -> Main:
    """The ``main`` of program ``name``; :class:`NotBuilt` if we have none yet."""
    module_name = PROGRAMS.get(name) or EXTRA_PROGRAMS.get(name)
    if module_name is None:
        raise KeyError(name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise NotBuilt(name) from exc
        raise
    main: Main = module.main
    return main


def read_patches(home: Path) -> frozenset[str]:
    """The patches switched on in ``home`` (one name a line)."""
    try:
        text = (home / PATCHES_FILE).read_text()
    except FileNotFoundError:
        return frozenset()
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def read_queue_socket(home: Path) -> Path | None:
    """The queue service socket named in ``home`` (:data:`QUEUE_SOCKET_FILE`), if any."""
    try:
        text = (home / QUEUE_SOCKET_FILE).read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


def run(
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    """Run program ``name`` in this process; exit 111 if it is not built yet."""
    try:
        main = load(name)
    except NotBuilt:
        ctx.stderr.write(f"{name}: not implemented in qmail-sim yet\n".encode())
        ctx.stderr.flush()
        return EXIT_TEMP
    return main(argv, env, stdin, stdout, ctx)
