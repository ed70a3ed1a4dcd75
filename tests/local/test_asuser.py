"""qmail-lspawn's uid switch: each qmail-local runs as the recipient (server.local.asuser).

Run as root, a delivery happens in a forked child with the recipient's uid
and gid, and meets that user's permissions as netqmail's qmail-local does: a
read-only mbox and an unwritable Maildir/tmp defer, a ``|program`` runs as the
user, files belong to the user, uid 0 is refused. Needs root to change uids.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
from pathlib import Path

import pytest

from server import privsep
from server.local import asuser, newu, replies
from server.local.lspawn import LocalChannel
from server.programs import ProgramContext
from server.runtime import real_runtime
from server.spawn import DeliveryJob

from .conftest import FakeQueue, hand_over, make_user_home

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing uids needs root")

UID, GID = 4242, 4343
MESSAGE = b"Subject: hello\n\nbody\n"


def user_home(base: Path, dotqmail: dict[str, str] | None = None) -> Path:
    return hand_over(make_user_home(base, "bob", dotqmail), UID, GID)


def channel(ctx: ProgramContext, home: Path, *, uid: int = UID, **kw: object) -> LocalChannel:
    (ctx.home / "users" / "assign").write_text(f"=bob:bob:{uid}:{GID}:{home}:::\n.\n")
    newu.build(ctx.home)
    return LocalChannel(ctx, switch_uid=True, **kw)  # type: ignore[arg-type]


def deliver(ctx: ProgramContext, ch: LocalChannel) -> bytes:
    path = ctx.home / "queue" / "mess" / "0" / "23"
    path.write_bytes(MESSAGE)
    os.chmod(path, 0o600)  # as qmail-queue leaves it: only the parent can read it
    return ch.deliver(
        DeliveryJob(msgid=23, message=path, sender="a@far.example", recipient="bob@x")
    )


def test_a_program_runs_as_the_recipient(ctx: ProgramContext, tmp_path: Path) -> None:
    home = user_home(tmp_path, {"": "|id -u; id -g; id -G; cat > got\n"})
    assert deliver(ctx, channel(ctx, home)) == b"K4242\n4343\n4343\ndid 0+0+1\n"
    got = home / "got"
    assert got.read_bytes() == MESSAGE  # the queue file, opened before the switch
    assert (got.stat().st_uid, got.stat().st_gid) == (UID, GID)


def test_maildir_files_belong_to_the_recipient(ctx: ProgramContext, tmp_path: Path) -> None:
    home = user_home(tmp_path)
    assert deliver(ctx, channel(ctx, home, default_delivery="./Maildir/")) == b"Kdid 1+0+0\n"
    (new,) = (home / "Maildir" / "new").iterdir()
    assert (new.stat().st_uid, new.stat().st_gid) == (UID, GID)


def test_a_read_only_mbox_defers(ctx: ProgramContext, tmp_path: Path) -> None:
    home = user_home(tmp_path)
    mbox = home / "Mailbox"
    mbox.touch()
    os.chown(mbox, UID, GID)
    os.chmod(mbox, 0o400)
    report = deliver(ctx, channel(ctx, home, default_delivery="./Mailbox"))
    assert report == b"ZUnable to open ./Mailbox: access denied. (#4.2.1)\n"


def test_an_unwritable_maildir_tmp_defers(ctx: ProgramContext, tmp_path: Path) -> None:
    home = user_home(tmp_path)
    os.chmod(home / "Maildir" / "tmp", 0o500)
    report = deliver(ctx, channel(ctx, home, default_delivery="./Maildir/"))
    assert report == f"Z{replies.MAILDIR_TEMP}\n".encode()


def test_a_home_the_user_cannot_enter_defers(ctx: ProgramContext, tmp_path: Path) -> None:
    home = user_home(tmp_path)
    os.chown(home, 0, 0)
    os.chmod(home, 0o700)
    report = deliver(ctx, channel(ctx, home))
    assert report.startswith(b"ZUnable to switch to " + str(home).encode())


def test_uid_0_is_refused(ctx: ProgramContext, tmp_path: Path) -> None:
    home = user_home(tmp_path)
    report = deliver(ctx, channel(ctx, home, uid=0))
    assert report == b"ZNot allowed to perform deliveries as root.\n"
    assert not list((home / "Maildir" / "new").iterdir())


def test_a_forward_is_queued_by_the_parent_as_the_user(ctx: ProgramContext, tmp_path: Path) -> None:
    home = user_home(tmp_path, {"": "&carol@far.example\n"})
    queue = FakeQueue(qp=77)
    assert deliver(ctx, channel(ctx, home, forwarder=queue)) == b"Kdid 0+1+0\nqp 77\n"
    ((message, sender, recipients, invoker, env),) = queue.calls
    assert (sender, recipients, invoker) == ("a@far.example", ["carol@far.example"], UID)
    assert message.startswith(b"Delivered-To: bob@x\n") and message.endswith(MESSAGE)
    assert "NEWSENDER" not in env  # the parent's own environment, not the child's


def test_two_deliveries_in_one_second_get_two_names(tmp_path: Path, qhome: Path) -> None:
    """A real runtime: each child's Maildir name carries its own pid (issue 13, item 3)."""
    import io

    ctx = ProgramContext(home=qhome, runtime=real_runtime(), stderr=io.BytesIO(), inprocess=False)
    home = user_home(tmp_path)
    ch = channel(ctx, home, default_delivery="./Maildir/")
    for _ in range(3):
        assert deliver(ctx, ch) == b"Kdid 1+0+0\n"
    names = [p.name for p in (home / "Maildir" / "new").iterdir()]
    assert len({n.split(".")[1] for n in names}) == 3


def test_concurrent_deliveries_never_share_a_name(tmp_path: Path, qhome: Path) -> None:
    """Ten at once from threads, as qmail-send's workers call qmail-lspawn: each
    child's own pid names its file (a counter copied into each child would not)."""
    import io
    import itertools
    from concurrent.futures import ThreadPoolExecutor

    counter = itertools.count(os.getpid() + 1)
    runtime = dataclasses.replace(real_runtime(), next_pid=lambda: next(counter))
    ctx = ProgramContext(home=qhome, runtime=runtime, stderr=io.BytesIO())
    home = user_home(tmp_path)
    ch = channel(ctx, home, default_delivery="./Maildir/")
    path = ctx.home / "queue" / "mess" / "0" / "23"
    path.write_bytes(MESSAGE)
    job = DeliveryJob(msgid=23, message=path, sender="a@far.example", recipient="bob@x")
    with ThreadPoolExecutor(max_workers=10) as pool:
        reports = list(pool.map(lambda _: ch.deliver(job), range(30)))
    assert reports == [b"Kdid 1+0+0\n"] * 30
    assert len(list((home / "Maildir" / "new").iterdir())) == 30


def test_counted_pids_stay_in_step(ctx: ProgramContext, tmp_path: Path) -> None:
    """The simulator's runtime: a warm worker delivers with a copy of the pid
    counter, and the parent's counter moves past the pids the worker took."""
    home = user_home(tmp_path)
    ch = channel(ctx, home, default_delivery="./Maildir/")
    first = ctx.runtime.next_pid()
    for _ in range(2):
        assert deliver(ctx, ch) == b"Kdid 1+0+0\n"
    pids = sorted(p.name.split(".")[1] for p in (home / "Maildir" / "new").iterdir())
    assert pids == [str(first + 1), str(first + 2)]
    assert ctx.runtime.next_pid() == first + 3


def test_a_runtime_that_cannot_be_pickled_forks_a_child(
    ctx: ProgramContext, tmp_path: Path
) -> None:
    """A test's closure for pids cannot go to a worker: the delivery runs in a
    child forked for it, with the same result."""
    runtime = dataclasses.replace(ctx.runtime, next_pid=lambda: 5000)
    ctx = dataclasses.replace(ctx, runtime=runtime)
    home = user_home(tmp_path)
    assert deliver(ctx, channel(ctx, home, default_delivery="./Maildir/")) == b"Kdid 1+0+0\n"
    (name,) = [p.name for p in (home / "Maildir" / "new").iterdir()]
    assert name.split(".")[1] == "5000"


def _asks_then_answers(_job: object, _fd: int | None, end: privsep.ChildEnd) -> bytes:
    return b"got " + end.ask(b"how?")


def _speaks_out_of_turn(_job: object, _fd: int | None, end: privsep.ChildEnd) -> bytes:
    end.sock.sendall(b"Zjunk")  # no frame the parent knows
    return b"never read"


def _until_ended(job: privsep.WorkerJob) -> tuple[bytes | None, int]:
    with selectors.DefaultSelector() as selector:
        selector.register(job, selectors.EVENT_READ)
        while True:
            assert selector.select(timeout=30), "the worker never answered"
            outcome = job.readable()
            if outcome is not None:
                return outcome


def test_a_worker_job_is_read_as_it_answers() -> None:
    """privsep.WorkerJob (bin/qmail-lspawn's loop): the worker's question is
    answered with ``serve``, its result ends the job and the worker goes back
    to the pool; a worker that sends what is not a frame is closed for good."""
    pool = privsep.WorkerPool()
    try:
        ask = privsep.pickle_job(f"{__name__}:_asks_then_answers", None)
        assert ask is not None
        job = pool.start(UID, GID, ask, None, lambda q: b"so" if q == b"how?" else b"?")
        assert _until_ended(job) == (b"got so", 0)
        again = pool.start(UID, GID, ask, None, lambda q: b"again")
        assert again.worker is job.worker  # warm: no new fork
        assert _until_ended(again) == (b"got again", 0)
        rogue = privsep.pickle_job(f"{__name__}:_speaks_out_of_turn", None)
        assert rogue is not None
        bad = pool.start(UID, GID, rogue, None, lambda q: b"")
        assert _until_ended(bad) == (None, 9)
        assert bad.worker.dead
    finally:
        pool.close_all()


def test_a_delivery_begun_ends_with_its_report(ctx: ProgramContext, tmp_path: Path) -> None:
    """LocalChannel.begin_path: the queue file goes to the worker with the job
    (the parent's copy is closed at once), and the report comes once the
    worker has delivered."""
    home = user_home(tmp_path)
    ch = channel(ctx, home, default_delivery="./Maildir/")
    path = ctx.home / "queue" / "mess" / "0" / "23"
    path.write_bytes(MESSAGE)
    os.chmod(path, 0o600)
    begun = ch.begin_path(path, "a@far.example", "bob@x")
    assert isinstance(begun, asuser.Started)
    with selectors.DefaultSelector() as selector:
        selector.register(begun, selectors.EVENT_READ)
        report = None
        while report is None:
            assert selector.select(timeout=30), "the worker never answered"
            report = begun.readable()
    assert report == b"Kdid 1+0+0\n"
    (new,) = (home / "Maildir" / "new").iterdir()
    assert new.read_bytes().endswith(MESSAGE)
    assert (
        ch.begin_path(path, "a@far.example", "nohost")
        == b"DSorry, address must include host name. (#5.1.3)\n"
    )


def test_idle_workers_are_looked_over_at_most_once_a_sweep() -> None:
    """privsep.WorkerPool: a worker idle longer than IDLE is closed when the
    pool is next used, but the idle ones are only looked over once SWEEP has
    passed since the last look (a pool of many users' workers is not walked
    for every delivery)."""
    pool = privsep.WorkerPool()
    pool.IDLE = 0.0  # any idle worker is stale
    pool.SWEEP = 3600.0
    try:
        ask = privsep.pickle_job(f"{__name__}:_asks_then_answers", None)
        assert ask is not None
        first = pool.start(UID, GID, ask, None, lambda q: b"")
        assert _until_ended(first) == (b"got ", 0)
        kept = pool.start(UID, GID, ask, None, lambda q: b"")
        assert kept.worker is first.worker  # no look yet: still warm
        assert _until_ended(kept) == (b"got ", 0)
        pool.SWEEP = 0.0
        fresh = pool.start(UID, GID, ask, None, lambda q: b"")
        assert fresh.worker is not first.worker and first.worker.dead
        assert _until_ended(fresh) == (b"got ", 0)
    finally:
        pool.close_all()
