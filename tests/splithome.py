"""Split homes for tests: made as root with qmail's users, or a skip that says why.

Tests import it as ``tests.splithome``. A split home must be reachable by
qmail's users and by the callers a test runs as (``nobody``, ``qmaild``), so
it is made in a directory of its own with mode 0755 under the system's
temporary directory, not under pytest's private ``tmp_path``. ``.ci/qmail-users``
creates the users; CI runs it as root before the tests.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.home import missing_ids, setup
from server.privsep import QmailIds
from server.queue import wrapper


def split_ids_or_skip() -> QmailIds:
    """qmail's ids, or skip: a split home needs root and qmail's users."""
    if os.geteuid() != 0:
        pytest.skip("a split home needs root (qmail's owners, a setuid qmail-queue)")
    ids = QmailIds.from_system()
    if ids is None:
        pytest.skip(f"qmail's users are missing ({', '.join(missing_ids())}): run .ci/qmail-users")
    return ids


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """An empty directory, mode 0755, that every user can reach."""
    path = Path(tempfile.mkdtemp(prefix="qmail-sim-split."))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class SplitHome:
    home: Path
    ids: QmailIds


def make_split_home(
    parent: Path, *, need_wrapper: bool = True, patches: Sequence[str] | None = None
) -> SplitHome:
    """``parent/qmail`` as a split home, or skip when this machine cannot have one."""
    ids = split_ids_or_skip()
    why = wrapper.unreachable(ids, sys.executable, parent)
    if why is not None:
        pytest.skip(f"no split home here: {why}")
    if need_wrapper and shutil.which(wrapper.COMPILER) is None:
        pytest.skip(f"the setuid qmail-queue is compiled with {wrapper.COMPILER}, absent here")
    home = parent / "qmail"
    note = setup(home, me="mx.example.org", patches=patches, ids=ids)
    assert note is None or not need_wrapper, note
    return SplitHome(home, ids)


@dataclass(frozen=True)
class Caller:
    """Who runs a program: uid, gid, and no supplementary groups."""

    name: str
    uid: int
    gid: int

    @classmethod
    def named(cls, name: str) -> Caller:
        pw = pwd.getpwnam(name)
        return cls(name, pw.pw_uid, pw.pw_gid)


def run_queue(
    program: Path,
    caller: Caller,
    message: bytes,
    envelope: bytes,
    *,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    cwd: Path | str = "/",
) -> int:
    """qmail.c's way: the message on fd 0, the envelope on a pipe as fd 1."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            [str(program), *args],
            stdin=subprocess.PIPE,
            stdout=read_end,
            stderr=subprocess.DEVNULL,
            user=caller.uid,
            group=caller.gid,
            extra_groups=[],
            env=dict(env or {"PATH": "/usr/bin:/bin"}),
            cwd=cwd,
        )
    finally:
        os.close(read_end)
    assert proc.stdin is not None
    try:
        proc.stdin.write(message)
        proc.stdin.close()
        os.write(write_end, envelope)
    except BrokenPipeError:
        pass
    finally:
        os.close(write_end)
    return proc.wait(timeout=60)


@contextlib.contextmanager
def queue_service(split: SplitHome, parent: Path) -> Iterator[Path]:
    """server.queue.service as qmailq in a forked child, listening on
    ``parent/run/queue`` (open to every caller, as ``serve`` makes it)."""
    import dataclasses
    import io
    import signal
    import socket

    from server import privsep
    from server.programs import ProgramContext
    from server.queue.service import QueueService
    from server.runtime import PidCounter, real_runtime

    run = parent / "run"
    run.mkdir()
    os.chown(run, split.ids.qmailq, split.ids.qmail)
    path = run / "queue"
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the service: never returns
        try:
            os.close(ready_r)
            privsep.become(split.ids.qmailq, split.ids.qmail)
            os.umask(0o033)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(str(path))
            os.chmod(path, 0o777)
            sock.listen(16)
            os.write(ready_w, b"!")
            # one qp per run, counting up from the service's pid, as serve's make_context
            runtime = dataclasses.replace(real_runtime(), next_pid=PidCounter(os.getpid() + 1))
            ctx = ProgramContext(
                home=split.home, runtime=runtime, stderr=io.BytesIO(), inprocess=False
            )
            QueueService(ctx, split.ids).serve_forever(sock)
        finally:
            os._exit(0)
    os.close(ready_w)
    ready = os.read(ready_r, 1)
    os.close(ready_r)
    try:
        assert ready == b"!", "the queue service did not start"
        yield path
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
