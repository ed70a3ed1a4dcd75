"""One qmail-local run in a forked child with the recipient's uid and gid.

qmail-lspawn.c forks per delivery; the child opens nothing new, sets the
user's gid and uid (prot_gid, prot_uid), refuses to go on as root, and execs
qmail-local, whose fd 0 is the queue file qmail-lspawn opened. Here the
child runs :class:`~server.local.program.Delivery` without a new
interpreter (:func:`server.privsep.run_as`), with the queue file opened
before the switch, so a delivery meets exactly the permissions the user
has: a read-only mbox, an unwritable ``Maildir/tmp``, a home the user cannot
enter, a ``.qmail`` the user cannot read.

Forwards: in a split home the child runs ``bin/qmail-queue`` (setuid qmailq)
as the user, as qmail-local does. Elsewhere (the simulator, a one-user home
run as root) the queue belongs to the parent, so the child asks the parent
to queue; the parent queues with its own environment and with the child's
uid as the invoker it fixed before the fork. Nothing the child sends is
trusted beyond the bytes of the forward itself.

Pids (Maildir names are time.pid.host): a real child uses its own pid, as
qmail-local does. The simulator counts pids; the child reports how many it
took, so the parent's counter moves on as if the delivery had run in it.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from server import privsep
from server.local import replies
from server.local.forwarding import Forwarder, ForwardResult, Invoker, queue_forwarder
from server.local.getpw import ALIAS_USER
from server.local.program import Delivery, Outcome
from server.programs import ProgramContext, real_pids
from server.runtime import PIDS_AHEAD, Runtime, for_worker

#: qmail-lspawn's child exit codes for a failed switch (qlx.h): prot_gid or
#: prot_uid failing is QLX_USAGE, still being root is QLX_ROOT.
_SWITCH_CODES = {
    privsep.EXIT_CANNOT_SWITCH: replies.QLX_USAGE,
    privsep.EXIT_STILL_ROOT: replies.QLX_ROOT,
}


def deliver(
    delivery: Delivery, uid: int, gid: int, *, message_fd: int, split_home: Path | None
) -> bytes:
    """Run ``delivery`` as ``uid``/``gid`` in a child; qmail-lspawn's report of it.

    ``message_fd`` is the queue file, opened while still root, as
    qmail-lspawn opens it for qmail-local's fd 0: the child reads the message
    from it (``delivery.message`` is not used) and hands it to programs.
    ``split_home`` is the qmail home when it is a split home (forwards then go
    through its setuid ``bin/qmail-queue``). It goes to a warm worker of that
    user (server.privsep.WORKERS), so that no delivery pays for a fork of this
    big process; the simulator's deliveries too, one at a time, its counted
    pids kept in step by the count each job reports. A job that cannot be
    pickled runs in a child forked for it (:func:`server.privsep.run_as`)."""
    begun = begin(delivery, uid, gid, message_fd=message_fd, split_home=split_home)
    return begun if isinstance(begun, bytes) else begun.wait()


class Started:
    """A delivery under way in a warm worker (:func:`begin`), for a selector's
    loop: :meth:`readable` when the worker's socket is, which returns
    qmail-lspawn's report once the worker has finished, else None."""

    def __init__(
        self, job: privsep.WorkerJob, finish: Callable[[bytes | None, int], bytes]
    ) -> None:
        self._job = job
        self._finish = finish

    def fileno(self) -> int:
        return self._job.fileno()

    def readable(self) -> bytes | None:
        outcome = self._job.readable()
        return None if outcome is None else self._finish(*outcome)

    def wait(self) -> bytes:
        """The report, the worker's answers read here (each read waits)."""
        return self._finish(*self._job.wait())


def begin(
    delivery: Delivery, uid: int, gid: int, *, message_fd: int, split_home: Path | None
) -> Started | bytes:
    """:func:`deliver` without waiting: the job is handed to a warm worker and
    a :class:`Started` returned (``message_fd`` may be closed once this
    returns: the worker has its own). A job that cannot be pickled is
    delivered before this returns, in a child of its own, and its report is
    returned."""
    serve, finish = _parent_of(delivery)
    payload = _worker_payload(delivery, split_home)
    if payload is None:

        def work(end: privsep.ChildEnd) -> bytes:
            return _run_in_child(delivery, end, split_home, message_fd)

        return finish(*privsep.run_as(uid, gid, work, serve, keep_fds=frozenset({message_fd})))
    return Started(privsep.WORKERS.start(uid, gid, payload, message_fd, serve), finish)


def _parent_of(
    delivery: Delivery,
) -> tuple[Callable[[bytes], bytes], Callable[[bytes | None, int], bytes]]:
    """The parent's two parts in a delivery: ``serve`` answers the child's
    requests (a forward to queue), ``finish`` turns the child's result or
    wait status into qmail-lspawn's report."""
    from server.local.lspawn import report

    runtime = delivery.runtime
    invoker: Invoker = "alias" if delivery.args.user == ALIAS_USER else delivery.uid
    taken = [0]

    def serve(request: bytes) -> bytes:
        fields = privsep.unpack_fields(request)
        _catch_up(runtime, taken, int(fields[0]))
        sender = fields[1].decode("latin-1")
        recipients = [f.decode("latin-1") for f in fields[3:]]
        result = delivery.forwarder(delivery.env, fields[2], sender, recipients, invoker)
        return privsep.pack_fields([result.error.encode("latin-1"), str(result.qp).encode()])

    def finish(result: bytes | None, status: int) -> bytes:
        if result is None:
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) in _SWITCH_CODES:
                return report(_SWITCH_CODES[os.WEXITSTATUS(status)], b"")
            return report(None, b"")  # qmail-lspawn: "qmail-local crashed"
        outcome, pids = _outcome(result)
        _catch_up(runtime, taken, pids)
        return report(outcome.code, outcome.output)

    return serve, finish


def _worker_payload(delivery: Delivery, split_home: Path | None) -> bytes | None:
    """The pickled job for a warm worker; None when it cannot be pickled (a
    test's runtime with a closure in it): that delivery forks a child of its own.

    A real process's worker takes fresh pids of its own. The simulator's
    pickled runtime carries a copy of its pid counter (server.runtime.PidCounter)
    and of its virtual clock, as a forked child's would: the worker counts
    on from the same pid and the parent catches up (:func:`_catch_up`)."""
    runtime = for_worker(delivery.runtime)
    if real_pids(runtime):
        runtime = dataclasses.replace(runtime, next_pid=os.getpid)
    job = dataclasses.replace(
        delivery,
        runtime=runtime,
        forwarder=_unset_forwarder,
        env=dict(delivery.env),
        message=b"",  # read from the queue file in the worker
        message_path=None,
    )
    # the home as a str (the worker makes a Path of it): a pickled Path is
    # rebuilt from its parts, which costs more than one parse
    return privsep.pickle_job(_WORK, (job, None if split_home is None else str(split_home)))


#: what a worker calls with each job
_WORK = "server.local.asuser:work_in_worker"


def work_in_worker(
    job: tuple[Delivery, str | None], message_fd: int | None, end: privsep.ChildEnd
) -> bytes:
    """In a worker, as the user: one qmail-local run; every Maildir name gets a
    fresh pid (the worker's own would repeat)."""
    if message_fd is None:  # pragma: no cover - the parent always sends the queue file
        raise ValueError("a delivery job comes with its queue file")
    delivery, split_home = job
    return _run_in_child(delivery, end, split_home, message_fd, own_pid_first=False)


def _unset_forwarder(*_args: object) -> ForwardResult:
    raise AssertionError("the child sets its own forwarder")  # pragma: no cover


def _run_in_child(
    delivery: Delivery,
    end: privsep.ChildEnd,
    split_home: str | Path | None,
    message_fd: int,
    *,
    own_pid_first: bool = True,
) -> bytes:
    """qmail-local's run, as the user; the packed outcome and the pids it took."""
    runtime = delivery.runtime
    count = [0]
    real = real_pids(runtime)

    def next_pid() -> int:
        count[0] += 1
        if not real:
            return runtime.next_pid()  # the simulator's count, caught up by the parent
        # a real child: its own pid first, as qmail-local's; a second Maildir
        # line gets another fresh one, as qmail-local forks again
        return os.getpid() if count[0] == 1 and own_pid_first else PIDS_AHEAD.take()

    try:
        message = read_message(message_fd)
    except OSError as exc:  # qmail-local: reading fd 0 failed
        text = replies.read_failed(exc.errno or 0).encode() + b"\n"
        return privsep.pack_fields([b"111", text, b"", text, b"0"])
    # the child's own copy (unpickled, or forked): set in place, not copied again
    delivery.message = message
    delivery.runtime = dataclasses.replace(runtime, next_pid=next_pid)
    delivery.forwarder = _child_forwarder(end, count, split_home, runtime)
    delivery.message_path = None
    delivery.message_fd = message_fd
    outcome = delivery.run()
    code = str(outcome.code).encode()
    pids = str(count[0]).encode()
    return privsep.pack_fields([code, outcome.output, outcome.stdout, outcome.stderr, pids])


def read_message(fd: int) -> bytes:
    """The whole queue file behind ``fd``, from its start; the descriptor's
    offset is left where it was (a ``|program`` reads it from there)."""
    chunks: list[bytes] = []
    offset = 0
    want = max(os.fstat(fd).st_size, 1)
    while chunk := os.pread(fd, want, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _catch_up(runtime: Runtime, taken: list[int], count: int) -> None:
    """Move the simulator's pid counter past the pids the child used."""
    if real_pids(runtime):
        return
    while taken[0] < count:
        runtime.next_pid()
        taken[0] += 1


def _outcome(result: bytes) -> tuple[Outcome, int]:
    """The child's packed result: qmail-local's outcome and the pids it took."""
    code, output, stdout, stderr, pids = privsep.unpack_fields(result)
    return Outcome(code=int(code), output=output, stdout=stdout, stderr=stderr), int(pids)


def _child_forwarder(
    end: privsep.ChildEnd, count: list[int], split_home: str | Path | None, runtime: Runtime
) -> Forwarder:
    """In a split home, qmail-queue as a process (setuid qmailq); else ask the parent."""
    if split_home is not None:
        home = Path(split_home)
        ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO(), inprocess=False)
        return queue_forwarder(ctx)

    def forward(
        env: Mapping[str, str],
        message: bytes,
        sender: str,
        recipients: Sequence[str],
        invoker: Invoker,
    ) -> ForwardResult:
        fields = [str(count[0]).encode(), sender.encode("latin-1"), message]
        answer = end.ask(privsep.pack_fields(fields + [r.encode("latin-1") for r in recipients]))
        error, qp = privsep.unpack_fields(answer)
        return ForwardResult(error=error.decode("latin-1"), qp=int(qp))

    return forward
