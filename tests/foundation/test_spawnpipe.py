"""server.spawnpipe: spawn.c's docmd() checks and the answer loop both spawners use."""

from __future__ import annotations

import io
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
