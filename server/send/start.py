"""``bin/qmail-start [defaultdelivery [logger args...]]`` (qmail-start(8)).

qmail-start starts qmail-lspawn (given ``defaultdelivery``, ``./Mailbox`` by
default), qmail-rspawn and qmail-clean from the home's ``bin/``, wired to
qmail-send by six pipes, and then becomes qmail-send (qmail-start.c): its
descriptor 0 is the log (the logger's stdin when a logger is named, e.g.
``splogger qmail``, looked up in ``PATH`` as execvp does; else qmail-start's
own stdout), 1/2 talk to qmail-lspawn, 3/4 to qmail-rspawn, 5/6 to
qmail-clean.

In a split home run as root, each part runs as qmail-start.c makes it:
the logger as qmaill (group nofiles), qmail-lspawn as root, qmail-rspawn as
qmailr, qmail-clean as qmailq and qmail-send itself as qmails, all in group
qmail.

Called in-process (the harness, ``ctx.inprocess``) it cannot replace its
process, so it runs the same parts in this one: in-process channels, direct
file steps for qmail-clean, and the logger, if any, as a child.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, BinaryIO

from server.privsep import QmailIds, privileged, prot_gid, prot_uid, spawn_as
from server.programs import ProgramContext
from server.send.program import DEFAULT_DELIVERY, EXIT_TEMP, line_writer, run_send


def _copy(src: IO[bytes], dst: BinaryIO) -> None:
    for chunk in iter(lambda: src.read1(65536), b""):  # type: ignore[attr-defined]
        dst.write(chunk)
        dst.flush()


def _high(fd: int) -> int:
    """A copy of ``fd`` above the seven descriptors qmail-send's layout uses."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD, 10)


#: (uid, gid) of each part qmail-start runs, None where it keeps its own
Ids = tuple[int, int] | None


def _ids_of(home: Path) -> dict[str, Ids]:
    """qmail-start.c's users for its children: in a split home run as root,
    the logger as qmaill:nofiles, qmail-lspawn as root (it switches per
    delivery), qmail-rspawn as qmailr, qmail-clean as qmailq, qmail-send as
    qmails, all but the logger in group qmail. Elsewhere nobody changes uid."""
    ids = QmailIds.of_home(home) if privileged() else None
    if ids is None:
        return dict.fromkeys(("logger", "lspawn", "rspawn", "clean", "send"))
    return {
        "logger": (ids.qmaill, ids.nofiles),
        "lspawn": None,
        "rspawn": (ids.qmailr, ids.qmail),
        "clean": (ids.qmailq, ids.qmail),
        "send": (ids.qmails, ids.qmail),
    }


def _spawn(args: list[str], ids: Ids, env: Mapping[str, str], **fds: object) -> None:
    """Start a child of qmail-start, as the user qmail-start makes it (prot.c)."""
    subprocess.Popen(args, env=dict(env), **spawn_as(ids), **fds)  # type: ignore[call-overload]


def exec_qmail_send(bin_dir: Path, default: str, logger: list[str], env: Mapping[str, str]) -> int:
    """qmail-start.c: fork the logger and the three helpers, then exec qmail-send."""
    os.chdir("/")
    os.umask(0o077)
    ids = _ids_of(bin_dir.parent)
    try:
        send_ids = ids["send"]
        if send_ids is not None:
            prot_gid(send_ids[1])  # qmail-start.c: prot_gid(auto_gidq) before anything
        log_fd = 1
        if logger:
            read_end, log_fd = os.pipe()
            _spawn(logger, ids["logger"], env, stdin=read_end)
            os.close(read_end)
        pipes = [os.pipe() for _ in range(6)]  # pi1 .. pi6
        helpers = (
            ([str(bin_dir / "qmail-lspawn"), default], ids["lspawn"], pipes[0][0], pipes[1][1]),
            ([str(bin_dir / "qmail-rspawn")], ids["rspawn"], pipes[2][0], pipes[3][1]),
            ([str(bin_dir / "qmail-clean")], ids["clean"], pipes[4][0], pipes[5][1]),
        )
        for args, who, child_in, child_out in helpers:
            # qmail-start closes 2-6 in the helpers; stderr goes nowhere
            _spawn(args, who, env, stdin=child_in, stdout=child_out, stderr=subprocess.DEVNULL)
        layout = [log_fd, pipes[0][1], pipes[1][0], pipes[2][1], pipes[3][0], pipes[4][1]]
        layout.append(pipes[5][0])
        high = [_high(fd) for fd in layout]
        for fd in {fd for pair in pipes for fd in pair} | ({log_fd} if logger else set()):
            os.close(fd)
        for target, fd in enumerate(high):
            os.dup2(fd, target)
            os.close(fd)
        if send_ids is not None:
            prot_uid(send_ids[0])  # qmail-start.c: prot_uid(auto_uids), then exec
        send = str(bin_dir / "qmail-send")
        os.execve(send, [send], dict(env))
    except OSError:
        return EXIT_TEMP  # qmail-start's die()
    return EXIT_TEMP  # not reached: execve does not return


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    default = argv[1] if len(argv) > 1 else DEFAULT_DELIVERY
    logger = argv[2:]
    if not ctx.inprocess:
        return exec_qmail_send(ctx.home / "bin", default, logger, env)
    if not logger:
        return run_send(ctx, env, line_writer(stdout), default_delivery=default)
    try:
        proc = subprocess.Popen(
            logger, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(env), cwd="/"
        )
    except OSError:
        return EXIT_TEMP  # qmail-start's die()
    assert proc.stdin is not None and proc.stdout is not None
    copier = threading.Thread(target=_copy, args=(proc.stdout, stdout), daemon=True)
    copier.start()
    try:
        code = run_send(ctx, env, line_writer(proc.stdin), default_delivery=default)
    finally:
        proc.stdin.close()
        proc.wait()
        copier.join()
        proc.stdout.close()
    return code
