"""The daemon's queue file steps in threads (server.send.todoahead), and the
pieces that let them overlap: qmail-clean commands from several threads
(server.send.pipes.CleanPipe) and a log flushed once per pass
(server.send.program.LineWriter).

Whatever overlaps, each message's own steps must keep qmail-send.c's order
(todo_do: unlink the channel and info files, create info/ and local/, write
and fsync info/ then local/, clean todo/; the delivery; job_close's unlink of
local/; messdone's unlink of info/ and foop/), and each message's log lines
theirs (new msg, info msg, starting delivery, success, end msg).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from server.programs import ProgramContext
from server.queue.client import queue_message
from server.runtime import FileOps, StrPath, real_runtime
from server.send import clean
from server.send.config import SendConfig
from server.send.daemon import Daemon
from server.send.phases import todo_prepare_batch
from server.send.pipes import CleanPipe
from server.send.program import LineWriter
from server.send.schedule import REPORTMAX
from server.send.store import QueueStore
from server.send.todoahead import Offload, TodoAhead
from server.spawn import Channel, ChannelName, DeliveryJob

from .test_daemon import WAIT, Watch

MESSAGES = 24
NOW = 1_700_000_000


class Recorder(FileOps):
    """Every durable step, in the order it happened (from any thread)."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        #: the file each descriptor from open_new is (until it is closed)
        self.names: dict[int, str] = {}

    def note(self, op: str, path: StrPath) -> None:
        with self.lock:
            self.steps.append((op, os.fspath(path)))

    def open_new(self, path: StrPath, mode: int = 0o644) -> int:
        fd = super().open_new(path, mode)
        self.names[fd] = os.fspath(path)
        self.note("create", path)
        return fd

    def write(self, fd: int, data: bytes) -> None:
        super().write(fd, data)
        self.note("write", self.names[fd])

    def fsync_open_in_order(self, *files: tuple[int, StrPath], hinted: bool = False) -> None:
        super().fsync_open_in_order(*files, hinted=hinted)
        for _fd, path in files:
            self.note("fsync", path)

    def unlink(self, path: StrPath) -> None:
        try:
            super().unlink(path)
        finally:
            self.note("unlink", path)


@dataclasses.dataclass
class NotingChannel:
    recorder: Recorder

    def deliver(self, job: DeliveryJob) -> bytes:
        self.recorder.note("deliver", f"msg/{job.msgid}")
        return b"Kok\n"


def backlog(ctx: ProgramContext, count: int) -> list[int]:
    ids = []
    for n in range(count):
        rcpt = [f"u{n}@mx.example.org"]
        result = queue_message(ctx, {}, b"Subject: x\n\nbody\n", "a@x.example", rcpt, invoker=0)
        assert result.error == "" and result.msgid is not None
        ids.append(result.msgid)
    return ids


def noting(recorder: Recorder) -> dict[ChannelName, Channel]:
    channel = NotingChannel(recorder)
    return {"local": channel, "remote": channel}


def run_until_done(ctx: ProgramContext, recorder: Recorder, watch: Watch, ids: list[int]) -> None:
    daemon = Daemon(ctx, noting(recorder), watch)
    assert isinstance(daemon.engine.todo, TodoAhead)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        for msgid in ids:
            watch.wait_for(f"end msg {msgid}")
    finally:
        daemon.terminate()
        thread.join(WAIT)
    assert not thread.is_alive()


def per_message(steps: list[tuple[str, str]]) -> dict[int, list[str]]:
    """Each message's steps as ``op dir``, in the order they happened."""
    out: dict[int, list[str]] = defaultdict(list)
    for op, path in steps:
        parts = path.split("/")
        if not parts[-1].isdigit():
            continue
        where = parts[-2] if parts[-2] in ("todo", "intd", "msg") else parts[-3]
        out[int(parts[-1])].append(f"{op} {where}")
    return out


#: qmail-send.c's steps for one local message, todo/ to end (qmail-clean's
#: unlinks included: without a qmail-clean process the daemon does them)
ONE_MESSAGE = [
    "unlink local",
    "unlink remote",
    "unlink info",
    "create info",
    "create local",
    "write info",
    "write local",
    "fsync info",
    "fsync local",
    "unlink intd",
    "unlink todo",
    "deliver msg",
    "unlink local",
    "unlink info",
    "unlink intd",
    "unlink mess",
]


def test_each_message_keeps_qmail_sends_order_of_steps(home: Path) -> None:
    recorder = Recorder()
    runtime = dataclasses.replace(real_runtime(), fileops=recorder)
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
    ids = backlog(ctx, MESSAGES)
    recorder.steps.clear()  # qmail-queue's own steps
    run_until_done(ctx, recorder, Watch(), ids)
    steps = per_message(recorder.steps)
    assert sorted(steps) == sorted(ids)
    for msgid in ids:
        assert steps[msgid] == ONE_MESSAGE, msgid
    for sub in ("todo", "intd", "info", "local", "mess"):
        assert not [p for p in (home / "queue" / sub).rglob("*") if p.is_file()], sub


def test_each_message_keeps_its_log_lines_in_order(home: Path) -> None:
    ctx = ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())
    ids = backlog(ctx, MESSAGES)
    watch = Watch()
    run_until_done(ctx, Recorder(), watch, ids)
    for msgid in ids:
        mine = [line for line in watch.lines if re.search(rf"\b{msgid}\b", line)]
        kinds = [re.sub(r" \d+.*", "", line) for line in mine]
        assert kinds == ["new msg", "info msg", "starting delivery", "end msg"], mine
        # "new msg" and its "info msg" come together, as todo_do logs them
        first = watch.lines.index(mine[0])
        assert watch.lines[first + 1] == mine[1]


def test_a_scan_commits_one_entry_per_pass_in_its_order(home: Path) -> None:
    """todo_do's one entry per pass: between two messages' new msg lines the
    pass that committed the first has started its delivery."""
    ctx = ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())
    ids = backlog(ctx, MESSAGES)
    watch = Watch()
    run_until_done(ctx, Recorder(), watch, ids)
    news = [int(line.split()[2]) for line in watch.lines if line.startswith("new msg ")]
    assert news == sorted(ids)  # the scan's order (numeric, as todo_ids lists them)


def test_terminate_waits_for_the_steps_under_way(home: Path) -> None:
    """TERM with entries prepared ahead: run() returns only once every thread's
    step is done, and a second qmail-send delivers whatever was left."""
    ctx = ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())
    ids = backlog(ctx, MESSAGES)
    watch = Watch()
    daemon = Daemon(ctx, noting(Recorder()), watch)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    watch.wait_for("new msg")
    daemon.terminate()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert not daemon.offload.busy
    assert isinstance(daemon.engine.todo, TodoAhead) and not daemon.engine.todo.busy()
    assert watch.lines[-1] == "status: exiting"
    left = [i for i in ids if f"end msg {i}" not in watch.lines]
    run_until_done(ctx, Recorder(), Watch(), left)
    assert not [p for p in (home / "queue" / "mess").rglob("*") if p.is_file()]


class Hinting(Recorder):
    """A Recorder that notes the writeback hint of a batch as well."""

    def start_writeback_open(self, *fds: int) -> None:
        super().start_writeback_open(*fds)
        for fd in fds:
            self.note("hint", self.names[fd])


def test_a_batch_writes_every_entry_before_its_first_fsync(home: Path) -> None:
    """todo_prepare_batch: one journal commit for the batch, each entry's
    steps still in todo_do's order; an entry that fails fails alone."""
    recorder = Hinting()
    runtime = dataclasses.replace(real_runtime(), fileops=recorder)
    ctx = ProgramContext(home=home, runtime=runtime, stderr=io.BytesIO())
    ids = backlog(ctx, 5)
    (home / "queue" / "todo" / str(ids[2])).write_bytes(b"Fa@x.example\0Xbad\0")
    recorder.steps.clear()
    store = QueueStore(home / "queue", runtime)
    done = todo_prepare_batch(store, SendConfig.read(home / "control"), ids, NOW)

    assert [d.msgid for d in done] == ids
    assert [d.chan for d in done] == [["local"], ["local"], None, ["local"], ["local"]]
    assert done[2].lines[-1] == f"warning: unknown record type in todo/{ids[2]}"
    ops = [op for op, _ in recorder.steps]
    first_fsync = ops.index("fsync")
    assert "write" not in ops[first_fsync:]  # every entry written before the first fsync
    steps = per_message(recorder.steps)
    good = ONE_MESSAGE[:11]  # todo_do's part, with the batch's hint before the fsyncs
    good[7:7] = ["hint info", "hint local"]
    for msgid in ids[:2] + ids[3:]:
        assert steps[msgid] == good, msgid
    assert steps[ids[2]] == ["unlink local", "unlink remote", "unlink info", "create info"]


def test_small_steps_run_in_their_order_by_one_thread() -> None:
    """Offload.run: steps that come while one runs are taken, in order, by
    the same thread; each outcome reaches the loop's ``then``."""
    offload = Offload(lambda: None)
    first_may_end = threading.Event()
    ran: list[tuple[int, str]] = []
    got: list[int] = []

    def step(i: int) -> Callable[[], int]:
        def work() -> int:
            if i == 0:
                first_may_end.wait(WAIT)
            ran.append((i, threading.current_thread().name))
            return i

        return work

    for i in range(5):
        offload.run(step(i), got.append)
    first_may_end.set()
    offload.shutdown()  # waits for the pool, then applies every outcome
    assert got == [0, 1, 2, 3, 4]
    assert [i for i, _ in ran] == [0, 1, 2, 3, 4]
    assert len({name for _, name in ran}) == 1
    assert offload.busy == 0


# --- qmail-clean from several threads ---------------------------------------


@pytest.fixture
def cleaner(home: Path) -> Iterator[CleanPipe]:
    """Our qmail-clean (server.send.clean.main) in a thread, on two pipes."""
    to_clean_r, to_clean_w = os.pipe()
    from_clean_r, from_clean_w = os.pipe()
    stdin = os.fdopen(to_clean_r, "rb")
    stdout = os.fdopen(from_clean_w, "wb")
    ctx = ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())
    thread = threading.Thread(target=clean.main, args=(["qmail-clean"], {}, stdin, stdout, ctx))
    thread.start()
    try:
        yield CleanPipe(to_clean_w, from_clean_r)
    finally:
        os.close(to_clean_w)
        thread.join(WAIT)
        stdin.close()
        stdout.close()
        os.close(from_clean_r)


def test_clean_commands_from_many_threads_get_their_own_answers(
    home: Path, cleaner: CleanPipe
) -> None:
    queue = home / "queue"
    ids = list(range(100, 160))
    for msgid in ids:
        (queue / "mess" / str(msgid % 23) / str(msgid)).write_bytes(b"x")
        (queue / "intd" / str(msgid)).write_bytes(b"x")
    # one that qmail-clean cannot remove (a directory): "!" for it alone
    bad = 99
    (queue / "mess" / str(bad % 23) / str(bad)).mkdir()
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda m: cleaner("foop", m), [bad, *ids]))
    assert answers == [False] + [True] * len(ids)
    assert not cleaner.dead
    for msgid in ids:
        assert not (queue / "mess" / str(msgid % 23) / str(msgid)).exists()
        assert not (queue / "intd" / str(msgid)).exists()
    assert (queue / "mess" / str(bad % 23) / str(bad)).is_dir()


def test_clean_commands_written_together_get_their_answers_in_order(
    home: Path, cleaner: CleanPipe
) -> None:
    """CleanPipe.many (a todo/ batch's cleans): the commands in one write, each
    answer to its own command, a threaded caller's single command among them."""
    queue = home / "queue"
    ids = list(range(200, 220))
    for msgid in ids:
        (queue / "intd" / str(msgid)).write_bytes(b"x")
        (queue / "todo" / str(msgid)).write_bytes(b"x")
    bad = ids[7]
    (queue / "todo" / str(bad)).unlink()
    (queue / "todo" / str(bad)).mkdir()  # qmail-clean cannot remove it: "!"
    with ThreadPoolExecutor(2) as pool:
        alone = pool.submit(cleaner, "todo", 999)  # nothing there: removed already, "+"
        together = pool.submit(cleaner.many, "todo", ids)
        assert alone.result(WAIT) is True
        answers = together.result(WAIT)
    assert answers == [msgid != bad for msgid in ids]
    assert cleaner.many("todo", []) == []
    for msgid in ids:
        assert (queue / "todo" / str(msgid)).exists() == (msgid == bad)


def test_a_clean_pipe_that_closes_is_dead(home: Path) -> None:
    to_clean_r, to_clean_w = os.pipe()
    from_clean_r, from_clean_w = os.pipe()
    os.close(from_clean_w)  # qmail-clean went away
    pipe = CleanPipe(to_clean_w, from_clean_r)
    try:
        assert pipe("todo", 5) is False
        assert pipe.dead
    finally:
        for fd in (to_clean_r, to_clean_w, from_clean_r):
            os.close(fd)


# --- the log, flushed once per pass ------------------------------------------


def test_held_log_lines_go_out_when_the_loop_sleeps(home: Path) -> None:
    read, write = os.pipe()
    out = os.fdopen(write, "wb")
    writer = LineWriter(out, flush_each=False)
    writer("one")
    assert os.read(read, 0) == b""  # nothing written yet ...
    os.set_blocking(read, False)
    with pytest.raises(BlockingIOError):
        os.read(read, 100)
    ctx = ProgramContext(home=home, runtime=real_runtime(), stderr=io.BytesIO())
    (msgid,) = backlog(ctx, 1)
    daemon = Daemon(ctx, noting(Recorder()), writer)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        seen = b""
        os.set_blocking(read, True)
        while f"end msg {msgid}\n".encode() not in seen:  # ... until the loop sleeps
            chunk = os.read(read, 4096)
            assert chunk
            seen += chunk
    finally:
        daemon.terminate()
        thread.join(WAIT)
        out.close()
        os.close(read)
    assert seen.startswith(b"one\nstatus: local 0/10 remote 0/20\nnew msg ")


# --- deliveries started from the loop, reports taken by the reader -------------


def test_spawn_pipe_begin_hands_each_report_to_its_delivery() -> None:
    """server.send.pipes.SpawnPipe, driven as qmail-send.c's loop drives it:
    commands written at once (begin, comm_write), the reports read when the
    descriptor is readable (readable, del_dochan) and handed in any order to
    the right callback; a report for no delivery under way is a stray (the
    daemon's "delivery report out of range"); the pipe closing fails the rest."""
    from server.send.pipes import SPAWN_DIED, SpawnPipe

    cmd_r, cmd_w = os.pipe()
    rep_r, rep_w = os.pipe()
    os.write(rep_w, bytes([4]))  # the spawn program's concurrency, first
    pipe = SpawnPipe(cmd_w, rep_r)
    assert pipe.fileno() == rep_r
    got: dict[str, bytes] = {}
    strays: list[None] = []
    pipe.on_stray = lambda: strays.append(None)

    for name in ("a", "b", "c"):
        job = DeliveryJob(msgid=1, message=Path("/nonexistent"), sender="s", recipient=name)
        pipe.begin(job, partial(got.__setitem__, name))
    commands = b""
    by_rcpt: dict[str, int] = {}
    while len(by_rcpt) < 3:
        commands += os.read(cmd_r, 4096)
        # each command: the delivery number byte (may be NUL), then three fields
        while commands.count(b"\0", 1) >= 3:
            delnum, rest = commands[0], commands[1:]
            _mess, _sender, rcpt, commands = rest.split(b"\0", 3)
            by_rcpt[rcpt.decode()] = delnum
    stray = next(n for n in range(4) if n not in by_rcpt.values())
    os.write(rep_w, bytes([by_rcpt["c"]]) + b"Kc\0" + bytes([stray]) + b"Kx\0")
    os.write(rep_w, bytes([by_rcpt["a"]]) + b"Z" + b"a" * 20000 + b"\0")
    os.close(rep_w)  # b's report never comes: the spawn program died
    while pipe.alive:
        pipe.readable()
    assert got == {"a": b"Z" + b"a" * (REPORTMAX - 2), "b": SPAWN_DIED, "c": b"Kc"}
    assert strays == [None]
    os.close(cmd_r)
    os.close(cmd_w)
    os.close(rep_r)
