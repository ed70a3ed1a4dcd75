"""qmail-local: deliver one message to one local address (qmail-local.c).

``qmail-local [-nN] user homedir local dash ext domain sender defaultdelivery``

:class:`Delivery` is the whole program over an in-memory message. It checks
the home directory (not writable by others, not sticky), sets the
environment of qmail-command(8), refuses a message that already carries its
``Delivered-To:`` line, finds the ``.qmail`` file (:mod:`.dotqmail`), falls
back to ``defaultdelivery`` when the file is empty or missing (missing with a
dash in the address is "no mailbox"), and carries out each line in order.
It never changes the process's directory: paths in ``.qmail`` files are
taken relative to the home directory, as qmail's ``chdir(homedir)`` makes them.

The result is an exit code (0, 100 or 111) and the bytes qmail-local writes
to its stdout and stderr — one stream, since qmail-lspawn joins them:
the commands' own output, then ``did F+W+P`` (files, forwards, programs)
and ``qp N`` after a forward, or the one line saying what went wrong.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from server.errors import EXIT_OK, EXIT_PERM, EXIT_TEMP, PermFail, QmailFailure, TempFail
from server.inject.getopt import Getopt, GetoptError
from server.local import command, dotqmail, lines, maildir, mbox, replies
from server.local.forwarding import Forwarder, Invoker, new_sender, queue_forwarder
from server.local.getpw import ALIAS_USER
from server.local.locking import Locker, lock_ex
from server.programs import ProgramContext
from server.runtime import Runtime, StrPath

#: conf-patrn: these mode bits are not allowed on ~ and ~/.qmail files.
AUTO_PATRN = 0o002


class UsageError(ValueError):
    pass


class _Exit(Exception):
    """Stop now with ``code``; ``text`` (if any) is printed with a newline."""

    def __init__(self, code: int, text: str | None = None) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


@dataclass(frozen=True, kw_only=True)
class LocalArgs:
    user: str
    homedir: str
    local: str
    dash: str
    ext: str
    host: str
    sender: str
    aliasempty: str
    flagdoit: bool = True


def parse_argv(argv: list[str]) -> LocalArgs:
    """getopt "nN" then exactly eight arguments.

    An unknown option is a :class:`UsageError` carrying sgetopt's own
    complaint (``qmail-local: illegal option -- x``), printed before the usage.
    """
    flagdoit = True
    options = Getopt(argv, "nN")
    try:
        for letter, _ in options:
            flagdoit = letter == "N"
    except GetoptError as exc:
        raise UsageError(str(exc)) from exc
    args = options.rest
    if len(args) != 8:
        raise UsageError("wrong number of arguments")
    user, homedir, local, dash, ext, host, sender, aliasempty = args
    return LocalArgs(
        user=user,
        homedir=homedir,
        local=local,
        dash=dash,
        ext=ext,
        host=host,
        sender=sender,
        aliasempty=aliasempty,
        flagdoit=flagdoit,
    )


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """``output`` is the one stream qmail-lspawn reads (fds 1 and 2 joined);
    ``stdout`` and ``stderr`` are the same bytes split as qmail-local itself
    writes them: its reports of what it did on 1, its errors and warnings
    on 2 (strerr), and a command's output on whichever fd the command used."""

    code: int
    output: bytes
    stdout: bytes = field(default=b"", compare=False)
    stderr: bytes = field(default=b"", compare=False)


@dataclass(kw_only=True)
class Delivery:
    """One run of qmail-local. Call :meth:`run` once."""

    args: LocalArgs
    message: bytes
    runtime: Runtime
    env: Mapping[str, str]
    forwarder: Forwarder
    uid: int = 0
    message_path: StrPath | None = None
    message_fd: int | None = None  # a seekable stdin holding the message
    program_timeout: float | None = None
    locker: Locker = lock_ex
    out: bytearray = field(default_factory=bytearray)
    #: (fd, bytes) in the order written, to split ``out`` back into 1 and 2.
    chunks: list[tuple[int, bytes]] = field(default_factory=list)
    #: fds 1 and 2 for ``|command`` children to inherit, when there are real ones.
    child_fds: tuple[int, int] | None = None
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])

    def run(self) -> Outcome:
        try:
            self._run()
        except _Exit as stop:
            if stop.text is not None:
                self.say(stop.text, fd=2)
            return self._outcome(stop.code)
        except QmailFailure as failure:
            self.say(failure.text, fd=2)
            return self._outcome(failure.exit_code)
        return self._outcome(EXIT_OK)

    def _outcome(self, code: int) -> Outcome:
        split = {1: bytearray(), 2: bytearray()}
        for fd, data in self.chunks:
            split[fd] += data
        return Outcome(
            code=code, output=bytes(self.out), stdout=bytes(split[1]), stderr=bytes(split[2])
        )

    def say(self, text: str, fd: int = 1) -> None:
        """A line on qmail-local's stdout (fd 1) or, for strerr texts, stderr (2)."""
        self.emit(text.encode("latin-1", "replace") + b"\n", fd)

    def emit(self, data: bytes, fd: int) -> None:
        self.out += data
        self.chunks.append((fd, data))

    # -- the steps of main() ---------------------------------------------

    def _run(self) -> None:
        a = self.args
        if not a.homedir.startswith("/"):
            raise _Exit(EXIT_PERM, replies.USAGE)
        self.home = a.homedir  # a str: every name below is joined to it (no pathlib)
        self._check_home()
        self.newenv: dict[str, str] = dict(self.env)
        self._set_env()
        lines_ = self._find_dotqmail()
        self._execute(lines_)
        self.say(f"did {self.counts[0]}+{self.counts[1]}+{self.counts[2]}")
        if self.forward_qp:
            self.say(f"qp {self.forward_qp}")

    def _check_home(self) -> None:
        """chdir(homedir) and checkhome()."""
        try:
            st = os.stat(self.home)
        except OSError as exc:
            raise TempFail(replies.switch_home_failed(self.args.homedir, _errno(exc))) from exc
        if not stat.S_ISDIR(st.st_mode):
            raise TempFail(replies.switch_home_failed(self.args.homedir, errno.ENOTDIR))
        if not os.access(self.home, os.X_OK):
            raise TempFail(replies.switch_home_failed(self.args.homedir, errno.EACCES))
        if st.st_mode & AUTO_PATRN:
            raise TempFail(replies.HOME_WRITABLE)
        if st.st_mode & stat.S_ISVTX:
            if self.args.flagdoit:
                raise TempFail(replies.HOME_STICKY)
            self.say(replies.HOME_STICKY_WARNING, fd=2)

    def _set_env(self) -> None:
        a = self.args
        env = self.newenv
        env.update(HOST=a.host, HOME=a.homedir, USER=a.user, LOCAL=a.local)
        env["RECIPIENT"] = f"{a.local}@{a.host}"
        self.dtline = lines.dtline(a.local, a.host)
        env["DTLINE"] = self.dtline
        if a.flagdoit:
            self._bouncexf()
        env["SENDER"] = a.sender
        self.rpline = lines.rpline(a.sender)
        env["RPLINE"] = self.rpline
        self.ufline = mbox.ufline(a.sender, self.runtime.now())
        env["UFLINE"] = self.ufline.decode("latin-1")
        env["EXT"], env["EXT2"], env["EXT3"], env["EXT4"] = lines.ext_parts(a.ext)
        env["HOST2"], env["HOST3"], env["HOST4"] = lines.host_parts(a.host)

    def _bouncexf(self) -> None:
        """Refuse a message whose header already has our Delivered-To line."""
        want = self.dtline.encode("latin-1", "replace")
        pos = 0
        data = self.message
        while True:
            end = data.find(b"\n", pos)
            if end < 0 or end - pos < 1:
                return
            if data[pos : end + 1] == want:
                raise PermFail(replies.LOOPING)
            pos = end + 1

    def _find_dotqmail(self) -> list[dotqmail.Instruction]:
        a = self.args
        self.forward_only = False
        found = self._search()
        if found is None and a.dash:
            raise PermFail(replies.NO_MAILBOX)
        self.newenv["NEWSENDER"] = self.ueo = self._new_sender()
        text = found or b""
        if not text:
            text = a.aliasempty.encode("latin-1", "replace")
            self.forward_only = False
        return dotqmail.parse(text)

    def _search(self) -> bytes | None:
        for cand in dotqmail.candidates(self.args.dash, self.args.ext):
            text = self._open_qmail(cand.name)
            if text is not None:
                if cand.default_from is not None:
                    self.newenv["DEFAULT"] = self.args.ext[cand.default_from :]
                return text
        return None

    def _open_qmail(self, name: str) -> bytes | None:
        """qmeexists(): the file's bytes, None when there is no usable file."""
        path = os.path.join(self.home, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            err = _errno(exc)
            if replies.error_temp(err) or err in (errno.EPERM, errno.EACCES):
                raise TempFail(replies.open_qmail_failed(name, err)) from exc
            return None
        # A directory opens too; qmeexists() skips anything not a regular file
        # (and Python's open() refuses a directory's fd, so look first).
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        with open(fd, "rb", buffering=0) as f:
            if st.st_mode & AUTO_PATRN:
                raise TempFail(replies.QMAIL_WRITABLE)
            self.forward_only = bool(st.st_mode & stat.S_IXUSR)
            try:
                return f.read()
            except OSError as exc:
                # slurpclose() failing is reported as temp_nomem() in qmail-local.c.
                raise TempFail(replies.NOMEM) from exc

    def _new_sender(self) -> str:
        a = self.args
        if a.sender in ("", "#@[]"):
            return a.sender
        owner, owner_default = dotqmail.owner_candidates(a.dash, a.ext)
        has_owner = self._exists(owner)
        has_default = has_owner and self._exists(owner_default)
        return new_sender(a.sender, a.local, a.host, has_owner, has_default)

    def _exists(self, name: str) -> bool:
        """qmeox(): stat() succeeds; a temporary error defers."""
        try:
            os.stat(os.path.join(self.home, name))
        except OSError as exc:
            if replies.error_temp(_errno(exc)):
                raise TempFail(replies.open_qmail_failed(name, _errno(exc))) from exc
            return False
        return True

    # -- the lines ----------------------------------------------------------

    forward_qp: int = 0

    def _execute(self, instructions: list[dotqmail.Instruction]) -> None:
        recips: list[str] = []
        for instr in instructions:
            skip = self._one(instr, recips)
            if skip:
                break
        if recips and self.args.flagdoit:
            self._forward(recips)

    def _one(self, instr: dotqmail.Instruction, recips: list[str]) -> bool:
        """Carry out one line; True when a command said 99 (stop here)."""
        kind, arg = instr.kind, instr.arg.decode("latin-1")
        if kind == "blank" and instr.first:
            raise TempFail(replies.FIRST_LINE_BLANK)
        if kind in ("maildir", "mbox"):
            self.counts[0] += 1
            if self.forward_only:
                raise TempFail(replies.FILE_WITH_X)
            self._file(kind, arg)
        elif kind == "program":
            self.counts[2] += 1
            if self.forward_only:
                raise TempFail(replies.PROG_WITH_X)
            return self._program(instr.arg)
        elif kind == "list":
            if arg == "list":
                self.forward_only = True
        elif kind == "forward":
            self.counts[1] += 1
            if self.args.flagdoit:
                recips.append(arg)
            else:
                self.say(f"forward {arg}")
        return False

    def _file(self, kind: str, arg: str) -> None:
        if not self.args.flagdoit:
            self.say(f"{kind} {arg}")
            return
        path = os.path.join(self.home, os.fsdecode(arg.encode("latin-1")))
        if kind == "maildir":
            header = (self.rpline + self.dtline).encode("latin-1", "replace")
            maildir.deliver(path, header, self.message, self.runtime)
        else:
            header = self.ufline + (self.rpline + self.dtline).encode("latin-1", "replace")
            mbox.deliver(path, arg, header, self.message, self.locker)

    def _program(self, cmd: bytes) -> bool:
        if not self.args.flagdoit:
            self.say(f"program {cmd.decode('latin-1')}")
            return False
        try:
            result = command.run(
                cmd,
                env=self.newenv,
                cwd=self.home,
                message=self.message,
                message_path=self.message_path,
                message_fd=self.message_fd,
                timeout=self.program_timeout,
                outputs=self.child_fds,
            )
        except OSError as exc:
            raise _Exit(EXIT_TEMP, replies.run_sh_failed(_errno(exc))) from exc
        self.emit(result.output, 1)
        verdict = command.outcome(result.exit_code)
        if verdict == "crashed":
            raise TempFail(replies.CHILD_CRASHED)
        if verdict == "perm":
            raise _Exit(EXIT_PERM)
        if verdict == "temp":
            raise _Exit(EXIT_TEMP)
        return verdict == "skip"

    def _forward(self, recips: list[str]) -> None:
        invoker: Invoker = "alias" if self.args.user == ALIAS_USER else self.uid
        data = self.dtline.encode("latin-1", "replace") + self.message
        try:
            result = self.forwarder(self.newenv, data, self.ueo, recips, invoker)
        except OSError as exc:
            raise TempFail(replies.fork_failed(_errno(exc))) from exc
        self.forward_qp = result.qp
        if result.error:
            code = EXIT_PERM if result.error.startswith("D") else EXIT_TEMP
            raise _Exit(code, replies.forward_failed(result.error))


def _seekable_fd(stream: BinaryIO) -> int | None:
    """fd 0 as qmail-lspawn gives it (the queue file), when it is one we can rewind."""
    try:
        fd = stream.fileno()
        os.lseek(fd, 0, os.SEEK_CUR)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd


def _errno(exc: OSError) -> int:
    return exc.errno if exc.errno is not None else errno.EIO


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    """bin/qmail-local: the message on stdin; reports on stdout, errors on stderr.

    Commands write straight to our fds 1 and 2 when both are real files, as
    qmail-local's children inherit them; in-process (BytesIO) their output
    is captured and written to stdout.
    """
    try:
        args = parse_argv(argv)
    except UsageError as exc:
        if isinstance(exc.__cause__, GetoptError):
            ctx.stderr.write(str(exc).encode("latin-1", "replace") + b"\n")
        ctx.stderr.write(replies.USAGE.encode() + b"\n")
        return EXIT_PERM
    try:
        message = stdin.read()
    except OSError as exc:
        ctx.stderr.write(replies.read_failed(_errno(exc)).encode() + b"\n")
        return EXIT_TEMP
    outcome = Delivery(
        args=args,
        message=message,
        message_fd=_seekable_fd(stdin),
        runtime=ctx.runtime,
        env=env,
        forwarder=queue_forwarder(ctx),
        uid=ctx.runtime.uid,
        child_fds=_real_fds(stdout, ctx.stderr),
    ).run()
    stdout.write(outcome.stdout)
    stdout.flush()
    ctx.stderr.write(outcome.stderr)
    ctx.stderr.flush()
    return outcome.code


def _real_fds(stdout: BinaryIO, stderr: BinaryIO) -> tuple[int, int] | None:
    try:
        fds = (stdout.fileno(), stderr.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    stdout.flush()
    stderr.flush()
    return fds
