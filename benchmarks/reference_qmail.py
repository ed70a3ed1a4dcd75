"""A real netqmail home beside ours in one benchmark run, without writing into it.

Used by ``receive.py`` and ``delivery.py --reference-qmail DIR``, where DIR is
a qmail home the user built (``make setup check``). Real qmail compiles its
home into every program (conf-qmail becomes auto_qmail), so its programs
cannot be pointed at a copy by a path or a variable. Running them on DIR
itself would write into its queue, which someone may be using. So:

1. the benchmark re-executes itself under ``unshare --mount --propagation
   private`` (:func:`enter_private_namespace`): a mount namespace of its own,
   whose mounts no other process on the machine sees;
2. ``cp -a DIR SCRATCH/reference`` (owners, modes, the lock/trigger fifo, the
   setuid qmail-queue), and ``mount --bind`` of that copy over DIR inside the
   namespace (:func:`scratch_copy`). Every real program then opens
   ``DIR/queue``, ``DIR/control`` and ``DIR/users`` and finds the copy. The
   mount is checked to be the copy and private before anything runs; it goes
   away with the namespace's last process, and SCRATCH is removed at the end;
3. the copy's queue is emptied (DIR may hold messages of whoever uses it, and
   ``cp`` may have caught a message half written) and its ``control/`` and
   ``users/`` are rewritten for the benchmark (:func:`write_control`).

DIR is only ever read, by ``cp``. Before all that, ``DIR/bin/qmail-showctl``
must say its home is DIR: a home compiled for another path would have its
programs write there, outside the bind mount, so it is refused.

Our side is a home made by ``qmail-sim setup`` as root (:func:`make_ours`): a
split home, so both sides run qmail's process model (qmail-smtpd as qmaild,
a setuid-qmailq qmail-queue, qmail-send's four processes under their uids).
Both homes live under SCRATCH, on the same filesystem, so both pay the same
fsyncs.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

#: Set in the environment of the re-executed benchmark: the DIR it is for.
NAMESPACE_MARK = "QMAILSIM_BENCH_NAMESPACE"
#: control/me of both homes, and the domain of every recipient.
ME = "bench.example"
#: qmail's split queue directories (INTERNALS) and its flat ones.
SPLIT_DIRS = ("mess", "info", "local", "remote")
FLAT_DIRS = ("pid", "intd", "todo", "bounce")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def compiled_home(reference: Path) -> Path:
    """The home ``reference``'s programs were compiled with (qmail-showctl's first line)."""
    showctl = reference / "bin" / "qmail-showctl"
    out = subprocess.run([str(showctl)], capture_output=True, timeout=30).stdout
    first = out.decode(errors="replace").splitlines()[:1]
    prefix = "qmail home directory: "
    if not first or not first[0].startswith(prefix):
        raise SystemExit(f"{showctl} did not name its home: {first!r}")
    return Path(first[0][len(prefix) :].rstrip("."))


def check_reference(reference: Path) -> Path:
    """DIR, resolved, once it is known safe to shadow it; else exit with why."""
    if os.geteuid() != 0:
        raise SystemExit("--reference-qmail needs root (a mount namespace, qmail's uids)")
    for tool in ("unshare", "mount", "umount", "cp"):
        if shutil.which(tool) is None:
            raise SystemExit(f"--reference-qmail needs {tool}")
    reference = reference.resolve()
    if not (reference / "bin" / "qmail-send").is_file():
        raise SystemExit(f"{reference} is not a qmail home (no bin/qmail-send)")
    home = compiled_home(reference)
    if home.resolve() != reference:
        raise SystemExit(
            f"{reference}'s programs were built for {home}: a copy mounted over "
            f"{reference} would not be the queue they write; give --reference-qmail {home}"
        )
    return reference


def enter_private_namespace(reference: Path) -> None:
    """Re-execute this benchmark in a mount namespace of its own (returns there)."""
    if os.environ.get(NAMESPACE_MARK) == str(reference):
        return
    env = dict(os.environ, **{NAMESPACE_MARK: str(reference)})
    argv = ["unshare", "--mount", "--propagation", "private", sys.executable, *sys.argv]
    sys.stdout.flush()
    os.execvpe("unshare", argv, env)


def _mount_line(path: Path) -> str | None:
    """/proc/self/mountinfo's line for the mount at ``path``, if one is there."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path):
            return line
    return None


@contextlib.contextmanager
def scratch_copy(reference: Path, scratch: Path) -> Iterator[Path]:
    """Copy DIR into ``scratch`` and bind the copy over DIR; yields DIR (now the copy)."""
    if os.environ.get(NAMESPACE_MARK) != str(reference):
        raise RuntimeError("scratch_copy outside the private mount namespace")
    copy = scratch / "reference"
    # cp may meet a queue file that whoever uses DIR removes meanwhile: the
    # queue is emptied below, so only the tree must be there.
    result = subprocess.run(["cp", "-a", str(reference), str(copy)], capture_output=True)
    if result.returncode != 0 and not all(
        "/queue/" in line for line in result.stderr.decode(errors="replace").splitlines()
    ):
        raise SystemExit(f"cp -a {reference}: {result.stderr.decode(errors='replace')}")
    subprocess.run(["mount", "--bind", str(copy), str(reference)], check=True)
    try:
        line = _mount_line(reference)
        if line is None or os.stat(reference).st_ino != os.stat(copy).st_ino:
            raise SystemExit(f"the bind mount over {reference} is not the copy")
        if "shared:" in line:
            raise SystemExit(f"the mount over {reference} is shared: {line}")
        clean_queue(reference)
        yield reference
    finally:
        subprocess.run(["umount", str(reference)], check=False)


def clean_queue(home: Path) -> None:
    """Remove every message file, keeping qmail's directories and lock/."""
    queue = home / "queue"
    for name in FLAT_DIRS:
        for entry in os.scandir(queue / name):
            os.unlink(entry.path)
    for name in SPLIT_DIRS:
        for split in os.scandir(queue / name):
            for entry in os.scandir(split.path):
                os.unlink(entry.path)


def queued(home: Path) -> int:
    """Messages fully queued and not yet preprocessed (todo/)."""
    return len(os.listdir(home / "queue" / "todo"))


def write_control(home: Path) -> None:
    """The same control/ on both sides: config-fast ME and nothing else."""
    control = home / "control"
    for entry in os.scandir(control):
        os.unlink(entry.path)
    for name, text in {
        "me": ME,
        "defaultdomain": ME,
        "plusdomain": ME,
        "locals": ME,
        "rcpthosts": ME,
    }.items():
        (control / name).write_text(text + "\n")
        os.chmod(control / name, 0o644)


def make_ours(where: Path) -> Path:
    """A split home of ours made by ``qmail-sim setup`` as root, with :func:`write_control`."""
    cmd = [sys.executable, "-m", "harness.cli", "setup", str(where), "--me", ME]
    result = subprocess.run(cmd, capture_output=True, timeout=300)
    note = result.stderr.decode(errors="replace").strip()
    if result.returncode != 0 or "one-user" in note:
        raise SystemExit(f"qmail-sim setup {where}: not a split home: {note}")
    write_control(where)
    return where


@contextlib.contextmanager
def journaled_dir(megabytes: int) -> Iterator[Path]:
    """A fresh ext4 with a journal (mkfs.ext4's defaults), loop-mounted in the
    private namespace, for the scratch homes (``--journaled``).

    Why: on ext4 without a journal (this machine's ``/``) every file created
    scans the inodes freed in the last seconds (ialloc.c, recently_deleted),
    so what a run measures depends on what else on the machine removed files
    meanwhile, on both sides alike. A journaled ext4, as a mail server's
    queue usually lives on, has no such scan; its fsyncs commit the journal.
    The image is removed as soon as it is mounted (the loop device holds
    it); the mount and its directory go at the end."""
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="qmail-bench-ext4-"))
    os.chmod(where, 0o755)  # qmail's users reach their homes through it
    image, mountpoint = where / "ext4.img", where / "mnt"
    try:
        with open(image, "wb") as out:
            out.truncate(megabytes << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
        mountpoint.mkdir()
        subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
        image.unlink()
        os.chmod(mountpoint, 0o755)
        print(f"homes on a fresh ext4 with a journal ({megabytes} MB, loop-mounted)")
        yield mountpoint
    finally:
        if _mount_line(mountpoint) is not None:
            subprocess.run(["umount", str(mountpoint)], check=False)
        shutil.rmtree(where, ignore_errors=True)


def add_journaled_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journaled",
        type=int,
        metavar="MB",
        help="with --reference-qmail: put both homes on a fresh ext4 with a journal of "
        "this many MB, loop-mounted in the benchmark's own namespace (journaled_dir)",
    )


@contextlib.contextmanager
def side_by_side(args: argparse.Namespace) -> Iterator[tuple[Path, Path, dict[str, Path]]]:
    """What every ``--reference-qmail`` benchmark runs in: this process
    re-executed in a private mount namespace, a scratch directory (on
    ``--journaled``'s filesystem, or under ``--dir``), DIR's copy bound over
    DIR and one of our split homes beside it, both with the benchmark's
    controls. Yields (DIR, the scratch directory, {"real": DIR, "ours": home});
    all of it is removed at the end."""
    reference = check_reference(args.reference_qmail)
    enter_private_namespace(reference)
    with contextlib.ExitStack() as stack:
        parent: Path | None = args.dir
        if args.journaled:
            parent = stack.enter_context(journaled_dir(args.journaled))
        scratch = scratch_dir(parent)
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        real = stack.enter_context(scratch_copy(reference, scratch))
        write_control(real)
        yield reference, scratch, {"real": real, "ours": make_ours(scratch / "ours")}


def scratch_dir(parent: Path | None) -> Path:
    """A scratch directory every qmail user can enter (homes and Maildirs go in it)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="qmail-bench-", dir=parent))
    os.chmod(path, 0o755)
    return path


def ids(user: str, group: str) -> tuple[int, int]:
    """tcpserver -u/-g take numbers (ucspi-tcp): a user's uid and a group's gid."""
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """TERM the process and wait ``timeout`` seconds for it, then KILL it."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """:func:`stop` the process (tcpserver, qmail-send, serve), then end its whole
    session (it was started with start_new_session) so nothing of it outlives us."""
    stop(proc, timeout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 9)


def print_ratios(label: str, rows: list[tuple[int, float, float]]) -> None:
    """The closing table of a --reference-qmail run: per row (``label`` value,
    real qmail's median rate, ours), and the ratio ours/real."""
    width = max(len(label), 7)
    print(f"{label:>{width}}  {'real msg/s':>10}  {'qmail-sim msg/s':>15}  {'ours/real':>9}")
    for value, theirs, ours in rows:
        print(f"{value:>{width}}  {theirs:10.0f}  {ours:15.0f}  {ours / theirs:9.2f}")
    print(f"at the end: {load_average()}")
