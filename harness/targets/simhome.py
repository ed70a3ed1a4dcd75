"""The simulator's homes, for :class:`harness.targets.sim.SimTarget` (and the
targets that start as it does): laying out a scenario's users (their homes
with ``.qmail`` files, Maildirs and mboxes, users/assign and users/cdb, the
checkpassword table, and, run as root, handing each home to the uid
users/assign names for it), and :class:`SimFileOps`, the file steps in the
qmail home as the simulator takes them.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.maildirseed import seed_maildir
from harness.scenario.model import User
from harness.targets.base import StepError
from server import programs
from server.privsep import closed_to
from server.runtime import FileOps, StrPath


def control_text(value: str) -> str:
    """A control or ``.qmail`` file's text: a last newline added when missing."""
    return value if value == "" or value.endswith("\n") else value + "\n"


@functools.cache
def programs_closed_to(uid: int, gid: int) -> str | None:
    """Why ``uid`` cannot run a home's bin/ scripts (our interpreter, our
    package), or None; modes do not change during a run, so asked once."""
    why = closed_to(uid, gid, Path(sys.executable), os.X_OK)
    return why or closed_to(uid, gid, Path(programs.__file__).parents[1])


def assigned_owners(assign: Path) -> dict[str, tuple[int, int]]:
    """home → (uid, gid) from users/assign (qmail-users(5)), as qmail-newu reads it."""
    from server.local.newu import parse

    try:
        text = assign.read_bytes()
    except FileNotFoundError:
        return {}
    owners: dict[str, tuple[int, int]] = {}
    for entry in parse(text):
        _user, uid, gid, home = entry.fields[:4]
        if uid.isdigit() and gid.isdigit():
            owners.setdefault(home.decode("latin-1"), (int(uid), int(gid)))
    return owners


def user_home(workdir: Path, user: User) -> Path:
    """Where a scenario's user lives: its ``home`` below ``workdir``, else
    ``homes/NAME``."""
    return workdir / (user.home or f"homes/{user.name}")


def make_user(workdir: Path, user: User) -> Path:
    """The user's home below ``workdir``, with what the scenario puts in it."""
    home = user_home(workdir, user).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if user.maildir:
        for sub in ("tmp", "new", "cur"):
            (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    if user.messages:
        seed_maildir(home / "Maildir", user.messages)
    if user.mbox:
        (home / user.mbox).touch()
    for ext, text in user.dotqmail.items():
        (home / f".qmail{ext}").write_text(control_text(text))
    return home


def set_modes(users: Mapping[str, User], user_homes: Mapping[str, Path]) -> None:
    """Each user's ``modes``, last, once the homes are the users' own."""
    for name, user in users.items():
        for rel, mode in user.modes.items():
            os.chmod(user_homes[name] / rel, mode)


def write_assign(
    home: Path,
    workdir: Path,
    assign: Sequence[str] | None,
    user_homes: Mapping[str, Path],
    uid: int,
) -> None:
    """users/assign (the scenario's, else one pair of entries a user, as ``uid``)
    and users/cdb from it; a users/assign qmail-newu refuses is a StepError."""
    if assign is not None:
        # the work directory is made per run: "{workdir}" stands for it
        lines = [line.replace("{workdir}", str(workdir.resolve())) for line in assign]
    else:
        gid = uid
        lines = []
        for name, path in user_homes.items():
            # qmail-users(5): an exact entry and one for name-ext (qmail-pw2u's pair)
            lines.append(f"={name}:{name}:{uid}:{gid}:{path}:::")
            lines.append(f"+{name}-:{name}:{uid}:{gid}:{path}:-::")
    if not lines and assign is None:
        return
    if not lines or lines[-1] != ".":
        lines.append(".")
    (home / "users" / "assign").write_text("".join(f"{x}\n" for x in lines))
    try:
        from server.local.newu import build
    except ImportError:
        return
    try:
        build(home)
    except ValueError as exc:  # qmail-newu's AssignFormatError: a scenario mistake
        raise StepError(str(exc)) from exc


def hand_over_homes(workdir: Path, home: Path, uid: int) -> list[str]:
    """Run as root, deliveries run as each user (server.local.asuser): give
    every home to the uid and gid users/assign names for it, as an
    administrator would, and let users through the work directory and
    the directories above it (traversal only: a work root such as
    pytest's is 0700). Why some of those users cannot run the home's bin/."""
    os.chmod(workdir, 0o755)
    workdir = workdir.resolve()
    for parent in workdir.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            os.chmod(parent, stat.S_IMODE(mode) | 0o011)
    owners = assigned_owners(home / "users" / "assign")
    reasons = (programs_closed_to(*ids) for ids in sorted(set(owners.values())))
    closed = list(dict.fromkeys(why for why in reasons if why))
    owners.setdefault(str(home / "alias"), (uid, uid))
    for owned, (owner, group) in owners.items():
        path = Path(owned)
        if path.is_dir() and path.is_relative_to(workdir):
            os.lchown(path, owner, group)
            for root, dirs, files in os.walk(path):  # links are not followed
                for name in dirs + files:
                    os.lchown(os.path.join(root, name), owner, group)
    return closed


def write_passwords(home: Path, users: Mapping[str, User], user_homes: Mapping[str, Path]) -> None:
    """The checkpassword table, ``name:password:home`` a line, for users with a password."""
    rows = [
        f"{u.name}:{u.password}:{user_homes[u.name]}"
        for u in users.values()
        if u.password is not None
    ]
    if rows:
        path = home / ".qmail-sim" / "passwords"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(f"{r}\n" for r in rows))


class SimFileOps(FileOps):
    """Real file steps, with two things the simulator decides itself.

    Trigger: in qmail, qmail-queue pulls lock/trigger and qmail-send wakes at
    once (triggerpull.c, qmail-send.c). In the simulator nobody reads the
    pipe; a pull (by a forward, a bounce, an injection) makes the next queue
    pass happen at the same virtual time instead.

    Inode numbers: qmail-queue names a message after the inode of its
    ``queue/pid/`` file (qmail-queue.c), which the file system picks, so log
    lines would differ from run to run. Here the simulated file system numbers
    those inodes itself, counting up from :data:`FIRST_INODE`. The files are
    created for real and every later step refers to the message by its name,
    so qmail's uniqueness argument (one number, one ``mess/`` file) still holds.
    """

    FIRST_INODE = 100_000

    def __init__(self) -> None:
        self.pulled = False
        self.last_inode = self.FIRST_INODE

    def pull_trigger(self, path: Path) -> None:
        self.pulled = True

    def inode(self, fd: int, path: StrPath) -> int:
        real = super().inode(fd, path)
        if os.path.basename(os.path.dirname(path)) != "pid":
            return real
        self.last_inode += 1
        return self.last_inode
