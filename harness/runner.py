"""Run scenarios: load, set up a target in a fresh work directory, play the steps.

:func:`run_scenario` never raises for a scenario's sake: a failed expectation,
a step that cannot run, a limit hit or a bug in a server module all become a
:class:`Result`, so the next scenario still runs. :func:`run_paths` loads files
(a broken file is one ``error`` result naming file, line and key) and runs
what they hold.

The wall-clock limit (``limits.wall``) is checked between steps and queue
passes; in the main thread a SIGALRM timer also interrupts a step that hangs
inside one program call. This module is an edge, like server/__main__.py: it
is where the harness reads the real clock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType

from harness.outcome import Result, StepFailure
from harness.scenario import Scenario, ScenarioError, load_file
from harness.scenario.model import Step
from harness.steps import execute
from harness.targets import make_target
from harness.targets.base import LimitExceeded, StepError, Target

SCENARIO_SUFFIXES = (".yaml", ".yml")


class _WallClock:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"wall-clock limit of {self.seconds:g}s reached")


class _Alarm:
    """SIGALRM after ``seconds`` raises LimitExceeded in the main thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.active = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "setitimer"
        )

    def __enter__(self) -> _Alarm:
        if self.active:
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds + 1.0)
        return self

    def _fire(self, _sig: int, _frame: FrameType | None) -> None:
        raise LimitExceeded(f"wall-clock limit of {self.seconds:g}s reached (interrupted)")

    def __exit__(self, *_exc: object) -> None:
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)


def default_workroot() -> Path | None:
    """Where work directories go: $QMAILSIM_TMPDIR, else /dev/shm (a tmpfs makes the
    many small files of a qmail home ~7x faster to create), else the system default."""
    chosen = os.environ.get("QMAILSIM_TMPDIR")
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return None


def describe_step(i: int, step: Step) -> str:
    return f"step {i + 1} ({step.kind}, line {step.line})"


def run_scenario(
    scenario: Scenario,
    *,
    target: str | Target = "sim",
    keep: bool = False,
    seed: int | None = None,
    workroot: Path | None = None,
    clock_start: float | None = None,
) -> Result:
    started = time.monotonic()
    result = Result(
        id=scenario.id, name=scenario.name, file=scenario.file, status="pass", tags=scenario.tags
    )
    workdir = Path(tempfile.mkdtemp(prefix="qmail-sim-", dir=workroot or default_workroot()))
    tgt = make_target(target) if isinstance(target, str) else target
    if clock_start is not None:
        tgt.clock_start = clock_start
    wall = _WallClock(scenario.limits.wall)
    if hasattr(tgt, "interrupt_check"):
        tgt.interrupt_check = wall.check
    try:
        with _Alarm(scenario.limits.wall):
            _play(scenario, tgt, workdir, seed, wall, result)
            if not result.ok:
                result.message = "\n".join([result.message, *(f"note: {h}" for h in tgt.hints())])
            if keep:  # inside the alarm: a hung target cannot hold the run here
                keep_records(tgt, workdir)
    finally:
        tgt.close()
        result.seconds = time.monotonic() - started
        if keep:
            result.workdir = workdir
        else:
            remove_workdir(workdir)
    return _apply_xfail(scenario, result)


def remove_workdir(workdir: Path) -> None:
    """Remove a scenario's work directory, quickly; run as a user, a home the
    user may not enter (mode 0) is opened up and the removal tried once more."""
    try:
        fd = os.open(workdir, _OPEN_DIR)
        try:
            _clear(fd)
        finally:
            os.close(fd)
        os.rmdir(workdir)
        return
    except OSError:
        pass
    shutil.rmtree(workdir, ignore_errors=True)
    if not workdir.exists():
        return
    for root, dirs, _files in os.walk(workdir):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
    shutil.rmtree(workdir, ignore_errors=True)


_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _clear(fd: int) -> None:
    """Empty the directory open at ``fd``. Most of a qmail home's directories
    (the queue's split ones) are empty by the end, and one rmdir removes
    such a directory where shutil.rmtree opens, lists and checks it first.
    A directory is entered relative to its parent's descriptor with
    O_NOFOLLOW, so a symbolic link left in the tree is removed, not followed."""
    with os.scandir(fd) as it:
        entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in it]
    for name, is_dir in entries:
        if not is_dir:
            os.unlink(name, dir_fd=fd)
            continue
        try:
            os.rmdir(name, dir_fd=fd)
            continue
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
        sub = os.open(name, _OPEN_DIR, dir_fd=fd)
        try:
            _clear(sub)
        finally:
            os.close(sub)
        os.rmdir(name, dir_fd=fd)


#: What ``--keep`` writes beside the home, for a look after the run.
KEPT_LOG = "qmail-send.log"
KEPT_DNS = "dns-queries.txt"


def keep_records(tgt: Target, workdir: Path) -> None:
    """Write qmail-send's log and the DNS questions into the kept work directory."""
    try:
        seen = tgt.observe()
        log = "".join(f"{line}\n" for line in seen.log)
        dns = "".join(f"{q}\n" for q in seen.dns_queries)
    except Exception as exc:  # a target that never started, or died: say so in the files
        log = dns = f"(not available: {type(exc).__name__}: {exc})\n"
    (workdir / KEPT_LOG).write_text(log)
    (workdir / KEPT_DNS).write_text(dns)


def _play(
    scenario: Scenario,
    tgt: Target,
    workdir: Path,
    seed: int | None,
    wall: _WallClock,
    result: Result,
) -> None:
    current = "setup"
    try:
        tgt.start(scenario, workdir, seed)
        for i, step in enumerate(scenario.steps):
            current = describe_step(i, step)
            wall.check()
            execute(step, tgt)
    except StepFailure as exc:
        result.status, result.step, result.message = "fail", current, exc.message
        result.expected, result.actual, result.transcript = exc.expected, exc.actual, exc.transcript
        result.same = exc.same
    except (StepError, LimitExceeded) as exc:
        result.status, result.step, result.message = "error", current, str(exc)
    except Exception as exc:  # a bug in a server module must not stop the suite
        result.status, result.step = "error", current
        result.message = f"{type(exc).__name__}: {exc}"
        result.transcript = traceback.format_exc().splitlines()[-12:]


def _apply_xfail(scenario: Scenario, result: Result) -> Result:
    if scenario.xfail is None:
        return result
    if result.status == "pass":
        result.status, result.message = "xpass", f"expected to fail: {scenario.xfail}"
    else:
        result.status = "xfail"
        result.message = f"{scenario.xfail} ({result.message})"
    return result


def discover(paths: Iterable[Path]) -> Iterator[Path]:
    """Scenario files under ``paths`` (directories recursively), sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix in SCENARIO_SUFFIXES and p.is_file()
            )
        else:
            yield path


def load_error(file: Path, exc: ScenarioError, shown: str | None = None) -> Result:
    """One error result for a file that did not load, every error of it in the message.

    The message lines already say ``file:line: key: …``, so the step is left empty
    (a report would otherwise print the place twice)."""
    name = shown or str(file)
    lines = [
        f"{name}:{e.line}: {e.located()}" if e.file == str(file) else str(e) for e in exc.errors
    ]
    return Result(
        id=f"{name}::(load)", name="(load)", file=name, status="error", message="\n".join(lines)
    )


def load_all(
    paths: Iterable[Path], *, relative_to: Path | None = None
) -> tuple[list[Scenario], list[Result]]:
    """Load every scenario file under ``paths``. With ``relative_to``, files are
    named relative to it in results and reports (the bundled suite as
    ``scenarios/…``, not as a path into site-packages)."""
    scenarios: list[Scenario] = []
    errors: list[Result] = []
    for file in discover(paths):
        shown = _shown(file, relative_to)
        try:
            loaded = load_file(file)
        except ScenarioError as exc:
            errors.append(load_error(file, exc, shown))
            continue
        scenarios.extend(loaded if shown is None else [replace(s, file=shown) for s in loaded])
    return scenarios, errors


def _shown(file: Path, base: Path | None) -> str | None:
    if base is None:
        return None
    try:
        return str(file.relative_to(base))
    except ValueError:
        return None


def run_all(
    scenarios: Iterable[Scenario],
    *,
    target: str = "sim",
    keep: bool = False,
    seed: int | None = None,
    on_result: Callable[[Result], None] | None = None,
    clock_start: float | None = None,
) -> list[Result]:
    results = []
    for scenario in scenarios:
        result = run_scenario(
            scenario, target=target, keep=keep, seed=seed, clock_start=clock_start
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def bundled_suite() -> Path:
    """The checkout's scenarios/ when run from one, else the copy installed with us."""
    checkout = Path(__file__).resolve().parent.parent / "scenarios"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parent / "data" / "scenarios"
