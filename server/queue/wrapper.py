"""A split home's ``bin/qmail-queue``: the setuid wrapper, compiled and installed.

netqmail's hier.c installs qmail-queue owned by qmailq with mode 04711, so
that whoever runs it writes the queue as qmailq. A Python script cannot be
setuid, so ``qmail-sim setup`` compiles ``server/data/qmail-queue.c`` (our
own few lines of C; see its opening comment for what it passes on and what it
drops) with the interpreter, the directory of our code and the home compiled
in, as qmail compiles in auto_qmail, and installs it with hier.c's owner and
mode. The wrapper runs :func:`server.queue.program.privileged_main`.

:func:`unreachable` checks first that qmailq can run that interpreter with
our code at all (an interpreter under a private directory such as /root
cannot be), so that setup makes a one-user home instead of a broken split
one. Without a C compiler, :func:`install` leaves the one-user script in place
and says so; docs/security.md says why a wrapper rather than a socket service.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Final

from server.privsep import QmailIds

#: hier.c: c(auto_qmail,"bin","qmail-queue",auto_uidq,auto_gidq,04711).
MODE: Final = 0o4711
COMPILER: Final = "cc"
SOURCE: Final = "qmail-queue.c"

#: What the wrapper's interpreter does before our code runs, as a test of it.
_PROBE: Final = (
    "import os, sys\n"
    "sys.path.append(sys.argv[1])\n"
    "import server.queue.program\n"
    "os.chdir(sys.argv[2])\n"
)
_SAFE_BYTES: Final = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+"
)


def package_dir() -> Path:
    """The directory that holds our ``server`` package (QS_LIB)."""
    return Path(__file__).resolve().parents[2]


def c_string(value: str) -> str:
    """``value`` as a C string literal; any byte but letters, digits and ``/._-+`` in octal."""
    out = []
    for byte in os.fsencode(value):
        out.append(chr(byte) if byte in _SAFE_BYTES else f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def compile_command(cc: str, source: Path, output: Path, python: str, home: Path) -> list[str]:
    """cc's argv: the three paths compiled in with -D."""
    return [
        cc,
        "-O2",
        "-Wall",
        "-o",
        str(output),
        f"-DQS_PYTHON={c_string(python)}",
        f"-DQS_LIB={c_string(str(package_dir()))}",
        f"-DQS_HOME={c_string(str(home))}",
        str(source),
    ]


def unreachable(ids: QmailIds, python: str, directory: Path) -> str | None:
    """Why qmailq could not run our qmail-queue with ``python`` in ``directory``; None if it can.

    Runs what the wrapper runs, as qmailq in group qmail: the interpreter
    isolated and without site, our code from :func:`package_dir`, then a chdir.
    """
    try:
        proc = subprocess.run(
            [python, "-I", "-S", "-c", _PROBE, str(package_dir()), str(directory)],
            user=ids.qmailq,
            group=ids.qmail,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"qmailq cannot run {python}: {exc}"
    if proc.returncode != 0:
        where = f"with qmail-sim's code from {package_dir()} in {directory}"
        return f"qmailq cannot run {python} {where}"
    return None


def build(output: Path, python: str, home: Path) -> str | None:
    """Compile the wrapper to ``output``; None, or why it could not be compiled."""
    cc = shutil.which(COMPILER)
    if cc is None:
        return f"no C compiler ({COMPILER})"
    with (
        resources.as_file(resources.files("server") / "data" / SOURCE) as source,
        tempfile.TemporaryDirectory(prefix="qmail-queue.") as tmp,
    ):
        built = Path(tmp) / "qmail-queue"
        proc = subprocess.run(
            compile_command(cc, source, built, python, home),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            first = (proc.stderr.decode(errors="replace").strip().splitlines() or ["?"])[0]
            return f"{COMPILER} failed: {first}"
        shutil.copyfile(built, output)
    return None


def install(home: Path, ids: QmailIds, python: str) -> str | None:
    """Put the wrapper at ``home/bin/qmail-queue``, qmailq:qmail 04711.

    None when installed; else why not, and the one-user script stays (only
    root and qmailq can then queue).
    """
    target = home / "bin" / "qmail-queue"
    tmp = target.with_name(".qmail-queue.wrapper")
    why = build(tmp, python, home)
    if why is not None:
        tmp.unlink(missing_ok=True)
        return why
    # chown clears the setuid bit: owner first, then the mode (install.c's order).
    os.chown(tmp, ids.qmailq, ids.qmail)
    os.chmod(tmp, MODE)
    os.replace(tmp, target)
    return None
