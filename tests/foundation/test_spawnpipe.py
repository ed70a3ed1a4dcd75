"""server.spawnpipe: spawn.c's docmd() checks and the answer loop both spawners use."""

from __future__ import annotations

import io
import os
import socket
import threading

from server import spawnpipe
from server.spawnpipe import Command, check_command


def _cmd(delnum: int = 1, messid: bytes = b"5/123", recipient: bytes = b"a@b") -> Command:
    return Command(delnum=delnum, messid=messid, sender=b"", recipient=recipient)


def test_messid_length_counts_the_terminating_nul() -> None:
    """docmd(): messid.len, NUL included, may not pass 100."""
    assert check_command(_cmd(messid=b"1" * 99), set()) is None
    assert check_command(_cmd(messid=b"1" * 100), set()) == spawnpipe.MESSID_LONG


def test_checks_in_docmds_order() -> None:
    assert check_command(_cmd(delnum=120, messid=b"x"), set()) == spawnpipe.DELNUM_BIG
    assert check_command(_cmd(messid=b"x"), {1}) == spawnpipe.DELNUM_USED
    assert check_command(_cmd(messid=b"x", recipient=b"b"), set()) == spawnpipe.MESSID_NONNUMERIC
    assert check_command(_cmd(recipient=b"b"), set()) == spawnpipe.NO_HOST


def test_serve_answers_each_command_and_keeps_a_busy_number_busy() -> None:
    release = threading.Event()

    def deliver(cmd: Command) -> bytes:
        release.wait(10)
        return b"K" + cmd.recipient

    class Feed(io.BytesIO):
        """Hands over one command per read, freeing the delivery after the last."""

        def __init__(self, chunks: list[bytes]) -> None:
            super().__init__()
            self.chunks = chunks

        def read1(self, size: int | None = -1) -> bytes:
            if not self.chunks:
                release.set()
                return b""
            return self.chunks.pop(0)

    chunks = [b"\x031\0s\0x@h\0", b"\x032\0s\0y@h\0", b"\x044\0s\0nohost\0"]
    with Feed(chunks) as stdin, io.BytesIO() as stdout:
        spawnpipe.serve(stdin, stdout, deliver)
        answers = stdout.getvalue().split(b"\0")[:-1]
    assert answers[:2] == [
        b"\x03" + spawnpipe.DELNUM_USED.encode(),
        b"\x04" + spawnpipe.NO_HOST.encode(),
    ]
    assert answers[2:] == [b"\x03Kx@h"]


class _Later:
    """A delivery under way elsewhere: readable once a byte comes on its socket."""

    def __init__(self, report: bytes, then: _Later | None = None) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.report = report
        self.then = then  # ended when this one ends
        self.calls = 0

    def fileno(self) -> int:
        return self.ours.fileno()

    def readable(self) -> bytes | None:
        self.calls += 1
        if self.ours.recv(1) != b"!":
            return None  # "." is news without an end
        if self.then is not None:
            self.then.theirs.send(b"!")
        return self.report


def test_serve_selecting_begins_in_the_loop_and_answers_as_each_ends() -> None:
    """spawnpipe.serve_selecting: a report known at once goes back at once; a
    delivery under way is answered when it ends, however many times its
    descriptor was readable before; one to run in this process gets a thread;
    the loop waits for every one after the end of input."""
    first = _Later(b"Kfirst")
    second = _Later(b"Ksecond", then=first)
    begun: dict[bytes, spawnpipe.Begun] = {
        b"a@h": first,
        b"b@h": second,
        b"c@h": b"Dat once",
        b"d@h": lambda: b"Kin a thread",
    }
    r, w = os.pipe()
    os.write(w, b"\x011\0s\0a@h\0\x021\0s\0b@h\0\x031\0s\0c@h\0")
    os.write(w, b"\x041\0s\0d@h\0\x011\0s\0x@h\0")  # 1 is busy still
    os.close(w)
    second.theirs.send(b".!")  # news, then the end: the second ends before the first
    try:
        with open(r, "rb", buffering=0) as stdin, io.BytesIO() as stdout:
            spawnpipe.serve_selecting(stdin, stdout, lambda cmd: begun[cmd.recipient])
            answers = stdout.getvalue().split(b"\0")[:-1]
    finally:
        for later in (first, second):
            later.ours.close()
            later.theirs.close()
    assert answers[0] == b"\x03Dat once"
    assert sorted(answers[1:]) == [
        b"\x01Kfirst",
        b"\x01" + spawnpipe.DELNUM_USED.encode(),
        b"\x02Ksecond",
        b"\x04Kin a thread",
    ]
    assert answers.index(b"\x02Ksecond") < answers.index(b"\x01Kfirst")
    assert second.calls == 2 and first.calls == 1
