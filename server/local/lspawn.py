"""qmail-lspawn: the local delivery channel (qmail-lspawn.c, spawn.c).

:class:`LocalChannel` is what qmail-send calls for each local recipient
(server/spawn.py): it splits ``local@domain`` at the last ``@``, finds the
user in charge (:mod:`.getpw`), runs qmail-local (:mod:`.program`) and turns
its exit code and output into the report qmail-lspawn's ``report()`` writes:

* exit 0 → ``K``; 111, 71, 74, 75 → ``Z``; 100 and anything else → ``D``,
  each followed by qmail-local's output (cut at a NUL, and at 3000 bytes
  with "Error report too long, sorry.");
* the qlx.h codes of the lspawn child itself → their fixed texts, e.g.
  ``ZUnable to find alias user!`` or ``ZTrouble reading users/cdb in
  qmail-lspawn.``; an empty local part (``<>``) → ``K`` with no text.

Privileges (DESIGN.md "Users and privileges"): qmail-lspawn runs as root and
forks a child per delivery that sets the recipient's gid and uid and runs
qmail-local; uid 0 is refused ("Not allowed to perform deliveries as
root."). With ``switch_uid`` (bin/qmail-lspawn and ``serve`` as root, the
simulator as root) we do the same through :mod:`.asuser`: qmail-local's code
runs in a forked child as the recipient, and meets the recipient's
permissions. Without it (not root) deliveries run in this process; a
recorded uid of 0 (users/cdb or passwd) is refused either way.

``bin/qmail-lspawn defaultdelivery`` speaks qmail-send's pipe protocol
(spawn.c, :mod:`server.spawnpipe`): it first writes one byte, its concurrency limit; then reads
commands ``<delivery number byte><messid>\\0<sender>\\0<recipient>\\0`` (messid
relative to queue/mess) and answers each with ``<delivery number byte>
<report>\\0``, in the order deliveries finish. At end of input it waits for
running deliveries and exits 0.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from server import spawnpipe
from server.local import asuser, replies
from server.local.forwarding import Forwarder, queue_forwarder
from server.local.getpw import (
    ALIAS_USER,
    LspawnExit,
    Nughde,
    Passwd,
    SystemPasswd,
    TablePasswd,
    nughde_get,
)
from server.local.program import Delivery, LocalArgs
from server.privsep import QmailIds, privileged
from server.programs import ProgramContext, real_pids, with_counting_pids
from server.runtime import StrPath, fresh_pid
from server.spawn import DeliveryJob

#: Our limit on one ``|command`` (qmail has none); the caller may change it.
DEFAULT_PROGRAM_TIMEOUT = 300.0


def report(code: int | None, output: bytes) -> bytes:
    """qmail-lspawn.c report(): ``code`` None means qmail-local crashed."""
    if code is None:
        return replies.REPORT_CRASHED.encode()
    fixed = replies.REPORT_FIXED.get(code)
    if fixed is not None:
        return fixed.encode()
    if code == 0:
        letter = b"K"
    elif code in replies.REPORT_SOFT_CODES:
        letter = b"Z"
    else:
        letter = b"D"
    return letter + truncate(output).split(b"\0", 1)[0]


def truncate(output: bytes) -> bytes:
    """spawn.c: a report longer than truncreport is cut, with a note."""
    limit = replies.TRUNCREPORT
    if len(output) <= limit:
        return output
    mess = replies.TRUNCMESS.encode()
    return output[: limit - len(mess) - 3] + mess


def default_env(home: Path) -> dict[str, str]:
    """qmail's rc: ``env - PATH="/var/qmail/bin:$PATH" qmail-start ./Maildir/``."""
    return {"PATH": f"{home}/bin:/usr/local/bin:/usr/bin:/bin"}


@dataclass
class LocalChannel:
    """qmail-lspawn + qmail-getpw + qmail-local, in this process."""

    ctx: ProgramContext
    default_delivery: str = "./Maildir/"
    passwd: Passwd | None = None
    env: Mapping[str, str] | None = None
    program_timeout: float | None = DEFAULT_PROGRAM_TIMEOUT
    forwarder: Forwarder | None = None
    #: qmail-lspawn's fork, prot_gid, prot_uid: each qmail-local runs in a
    #: child as the recipient (needs root; see server.local.asuser)
    switch_uid: bool = False
    _passwd: Passwd = field(init=False)
    _split: bool = field(init=False)

    def __post_init__(self) -> None:
        home, uid = self.ctx.home, self.ctx.runtime.uid
        self._split = QmailIds.of_home(home) is not None
        if self.passwd is not None:
            self._passwd = self.passwd
        elif self.ctx.inprocess:
            # The simulator is hermetic: no system accounts, only users/cdb
            # and alias. As a process (bin/qmail-lspawn) we read passwd.
            self._passwd = TablePasswd(home, uid)
        else:
            self._passwd = SystemPasswd(home, uid)

    def _runs_as(self, nughde: Nughde) -> tuple[int, int] | None:
        """The uid and gid a delivery runs as in its own child; None: in this process.

        With ``switch_uid``, the recipient's, always in a split home. In a
        one-user home the alias user has no account of its own: alias/
        belongs to whoever made the home, and alias deliveries run as that
        owner, as every program of a one-user home does (the alias files are
        the administrator's own); when that is root, in this process.
        """
        if not self.switch_uid:
            return None
        if self._split or nughde.user != ALIAS_USER:
            return nughde.uid, nughde.gid
        try:
            st = (self.ctx.home / "alias").stat()
        except OSError:
            return nughde.uid, nughde.gid
        return None if st.st_uid == 0 else (st.st_uid, st.st_gid)

    def deliver(self, job: DeliveryJob) -> bytes:
        return self.deliver_path(job.message, job.sender, job.recipient)

    def deliver_path(self, message: StrPath, sender: str, recipient: str) -> bytes:
        begun = self.begin_path(message, sender, recipient, wait=True)
        if isinstance(begun, bytes):
            return begun
        assert callable(begun)  # with wait, a worker's delivery has ended already
        return begun()

    def begin_path(
        self, message: StrPath, sender: str, recipient: str, *, wait: bool = False
    ) -> spawnpipe.Begun:
        """:meth:`deliver_path` in the parts a selector's loop wants
        (spawnpipe.serve_selecting): the report when it is known at once, a
        delivery under way in a warm worker (``asuser.Started``), or, for a
        delivery in this process, a callable that runs it. With ``wait`` a
        worker's delivery is waited for here (the report comes back)."""
        at = recipient.rfind("@")
        if at < 0:
            return spawnpipe.NO_HOST.encode()
        try:  # spawn.c: the queue file, opened before the child, becomes its fd 0
            fd = os.open(message, os.O_RDONLY)
        except OSError:
            return spawnpipe.OPEN.encode()
        try:
            local, host = recipient[:at], recipient[at + 1 :]
            return self._begin_open(fd, message, sender, local, host, wait=wait)
        finally:
            os.close(fd)  # a worker has its own (sent with the job)

    def _begin_open(
        self, fd: int, message: StrPath, sender: str, local: str, host: str, *, wait: bool
    ) -> spawnpipe.Begun:
        if not local:  # spawn.c: "<>" — nothing to deliver, success
            return report(0, b"")
        try:
            nughde = nughde_get(self.ctx.home, local, self._passwd)
        except LspawnExit as exc:
            return report(exc.code, b"")
        if nughde.uid == 0:
            return report(replies.QLX_ROOT, b"")
        args = LocalArgs(
            user=nughde.user,
            homedir=nughde.home,
            local=local,
            dash=nughde.dash,
            ext=nughde.ext,
            host=host,
            sender=sender,
            aliasempty=self.default_delivery,
        )
        ids = self._runs_as(nughde)
        runtime = self.ctx.runtime
        if real_pids(runtime) and ids is None:
            # a Maildir name needs a pid no other delivery has this second
            # (the forked child of switch_uid has its own)
            runtime = dataclasses.replace(runtime, next_pid=fresh_pid)
        delivery = Delivery(
            args=args,
            message=b"" if ids is not None else asuser.read_message(fd),
            message_path=message,
            runtime=runtime,
            env=self.env if self.env is not None else default_env(self.ctx.home),
            forwarder=self.forwarder or queue_forwarder(self.ctx),
            uid=nughde.uid,
            program_timeout=self.program_timeout,
        )
        if ids is not None:
            # the child reads the message from the descriptor, as qmail-local from fd 0
            split_home = self.ctx.home if self._split else None
            start = asuser.deliver if wait else asuser.begin
            return start(delivery, *ids, message_fd=fd, split_home=split_home)

        def run() -> bytes:
            outcome = delivery.run()
            return report(outcome.code, outcome.output)

        return run


# --- bin/qmail-lspawn: qmail-send's pipe protocol ------------------------------


def _deliver_command(channel: LocalChannel, cmd: spawnpipe.Command) -> bytes:
    return _guarded(lambda: channel.deliver_path(*_command_args(channel, cmd)))


def _begin_command(channel: LocalChannel, cmd: spawnpipe.Command) -> spawnpipe.Begun:
    try:
        begun = channel.begin_path(*_command_args(channel, cmd))
    except Exception:  # a bug of ours must not leave qmail-send waiting
        return replies.REPORT_FIXED[replies.QLX_SYS].encode()
    if isinstance(begun, bytes):
        return begun
    if callable(begun):
        return functools.partial(_guarded, begun)
    return _Guarded(begun)


def _command_args(channel: LocalChannel, cmd: spawnpipe.Command) -> tuple[str, str, str]:
    mess = os.path.join(channel.ctx.home, "queue", "mess", cmd.messid.decode("latin-1"))
    return mess, cmd.sender.decode("latin-1"), cmd.recipient.decode("latin-1")


def _guarded(run: Callable[[], bytes]) -> bytes:
    try:
        return run()
    except Exception:  # a bug of ours must not leave qmail-send waiting
        return replies.REPORT_FIXED[replies.QLX_SYS].encode()


@dataclass(frozen=True)
class _Guarded:
    """A delivery under way whose every step turns a bug of ours into a report."""

    pending: spawnpipe.Pending

    def fileno(self) -> int:
        return self.pending.fileno()

    def readable(self) -> bytes | None:
        try:
            return self.pending.readable()
        except Exception:  # a bug of ours must not leave qmail-send waiting
            return replies.REPORT_FIXED[replies.QLX_SYS].encode()


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    if len(argv) < 2:
        return 100
    if not (ctx.home / "queue" / "mess").is_dir():
        return 111  # spawn.c: chdir(auto_qmail), chdir("queue/mess")
    # qmail-lspawn forks a qmail-local per delivery; here they are calls, and
    # two at once into one Maildir in one second need two names
    channel = LocalChannel(with_counting_pids(ctx), argv[1], env=env, switch_uid=privileged())
    stdout.write(bytes([spawnpipe.AUTO_SPAWN]))  # spawn.c: the concurrency limit, first
    stdout.flush()
    if channel.switch_uid:  # the deliveries run in warm workers: one thread watches them all
        spawnpipe.serve_selecting(stdin, stdout, functools.partial(_begin_command, channel))
    else:
        spawnpipe.serve(stdin, stdout, functools.partial(_deliver_command, channel))
    return 0
