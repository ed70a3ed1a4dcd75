"""blast(): how qmail-smtpd reads a message after ``354 go ahead`` (qmail-smtpd.c).

A byte-level machine, kept exactly: CR LF becomes LF; at the start of a line
a dot is dropped (``..`` gives ``.``, ``.x`` gives ``x``) except in ``.`` CR
followed by something other than LF, which is kept whole; ``.`` CR LF ends the
message; a LF not preceded by CR (also ``.`` LF) is a stray newline and ends
the connection. A CR not followed by LF is kept.

While in the header (until a line that is exactly CR LF), each line starting
with ``received`` or ``delivered`` — every letter in either case — counts one
hop. ``put()`` counts the bytes stored; past ``databytes`` nothing more is
kept and the message will be refused once its end is read.

A driver that streams the message to qmail-queue (``held=False``) takes
what is stored as it comes (:meth:`Blast.take`), as qmail-smtpd's
qmail_put() passes each byte on down the pipe; only ``databytes`` limits it
then. Held whole until its end (the simulator), a message is also cut at
:data:`MAX_MESSAGE`.

Speed: a whole line that needs no special care (ends in CR LF, no other CR,
no leading dot), a run of such lines in the body, and the middle of a line
are handled in one step each; property tests hold these shortcuts equal to
the byte loop (``fast=False``), the input whole or in pieces.
"""

from __future__ import annotations

import re

#: qmail streams the body to qmail-queue; where we hold it whole, past this
#: size the bytes are dropped and the message is refused as if the disk
#: were full.
MAX_MESSAGE = 256 << 20

_LINE_BREAK = re.compile(rb"[\r\n]")
#: What the byte loop must see in a body, besides a line that starts with a
#: dot: a LF without its CR, a CR without its LF.
_STRAY = re.compile(rb"(?<!\r)\n|\r(?!\n)")


def _paired(lines: bytes) -> bool:
    """Whether every LF in ``lines`` has its CR and every CR its LF (then the
    three counts agree). Counting runs at memory speed; ``_STRAY``, with no
    fixed first byte to skip ahead on, costs about 25 ns a byte (50 µs for
    a message of 2 KB), so it is searched only where a stray CR or LF is."""
    pairs = lines.count(b"\r\n")
    return lines.count(b"\n") == pairs == lines.count(b"\r")


_HEADER_X = (b"received", b"RECEIVED")
_HEADER_Z = (b"delivered", b"DELIVERED")


class Blast:
    """blast(): the byte-level state machine of the message after 354."""

    def __init__(self, databytes: int, *, fast: bool = True, held: bool = True) -> None:
        self.fast = fast  # tests compare the shortcuts with the byte-level path
        self.held = held
        self.state = 1  # 0 mid-line, 1 after CR LF, 2 CR LF ".", 3 CR LF "." CR, 4 after CR
        self.out = bytearray()
        self.size = 0
        self.databytes = databytes
        self.hops = 0
        self.in_header = True
        self.pos = 0
        self.maybe_x = self.maybe_y = self.maybe_z = True

    def put(self, data: bytes) -> None:
        """put(): past databytes qmail_fail()s and stores nothing more."""
        before = self.size
        self.size += len(data)
        if self.held:
            limit = min(self.databytes or MAX_MESSAGE, MAX_MESSAGE)
        elif self.databytes:
            limit = self.databytes
        else:
            self.out += data
            return
        if self.size <= limit:
            self.out += data
        elif before < limit:
            self.out += data[: limit - before]

    def take(self) -> bytes:
        """What was stored since the last take, for a driver that streams it."""
        data = bytes(self.out)
        self.out.clear()
        return data

    @property
    def too_big(self) -> bool:
        return bool(self.databytes) and self.size > self.databytes

    @property
    def out_of_room(self) -> bool:
        return self.held and self.size > MAX_MESSAGE

    def _header(self, ch: int) -> None:
        pos = self.pos
        if pos < 9:
            if ch not in (_HEADER_Z[0][pos], _HEADER_Z[1][pos]):
                self.maybe_z = False
            if self.maybe_z and pos == 8:
                self.hops += 1
            if pos < 8 and ch not in (_HEADER_X[0][pos], _HEADER_X[1][pos]):
                self.maybe_x = False
            if self.maybe_x and pos == 7:
                self.hops += 1
            if pos < 2 and ch != b"\r\n"[pos]:
                self.maybe_y = False
            if self.maybe_y and pos == 1:
                self.in_header = False
            self.pos += 1
        if ch == 0x0A:
            self.pos = 0
            self.maybe_x = self.maybe_y = self.maybe_z = True

    def feed(self, buf: bytes | bytearray, start: int) -> tuple[int, str | None]:
        """Consume from ``buf[start:]``: (new offset, "end"/"stray_newline"/None)."""
        i, n = start, len(buf)
        while i < n:
            if self.fast and self.state == 1 and not self.in_header:
                used = self._plain_block(buf, i)
                if used:
                    i += used
                    continue
            if self.fast and self.state == 1:
                used = self._plain_line(buf, i)
                if used:
                    i += used
                    continue
            if self.fast and self.state == 0 and not (self.in_header and self.pos < 9):
                # Fast path: the middle of a line changes nothing but the bytes.
                found = _LINE_BREAK.search(buf, i)
                j = n if found is None else found.start()
                if j > i:
                    self.put(bytes(buf[i:j]))
                    i = j
                    continue
            ch = buf[i]
            i += 1
            if self.in_header:
                self._header(ch)
            verdict = self._step(ch)
            if verdict is not None:
                return i, verdict
        return i, None

    def _plain_block(self, buf: bytes | bytearray, i: int) -> int:
        """In the body, at a line start: the whole lines from ``i`` that each
        end in CR LF, have no other CR and no leading dot, in one step (their
        length), or 0 when the first line needs more care."""
        if buf[i : i + 1] == b".":
            return 0
        end = buf.rfind(b"\r\n", i) + 2  # after the last whole line
        if end < 2:
            return 0
        # a line starting with a dot (the message's end, at least in its
        # last read): the lines before it, through their CR LF
        dot = buf.find(b"\n.", i, end)
        block = bytes(buf[i : end if dot < 0 else dot + 1])
        if not _paired(block):
            # a stray CR or LF, first (a bare LF before a dot is one): the
            # lines before the one holding it
            stray = _STRAY.search(buf, i, end)
            assert stray is not None
            end = buf.rfind(b"\n", i, stray.start()) + 1
            if end <= i:
                return 0
            block = bytes(buf[i:end])
        self.put(block.replace(b"\r\n", b"\n"))
        return len(block)

    def _plain_line(self, buf: bytes | bytearray, i: int) -> int:
        """A whole line at a line start that ends in CR LF, has no other CR and
        no leading dot: what the byte loop would do to it, in one step (its
        length), or 0 when the line needs the byte loop."""
        j = buf.find(b"\n", i)
        if j < 0 or j == i or buf[j - 1] != 0x0D or buf[i] == 0x2E:
            return 0
        line = bytes(buf[i : j + 1])
        if b"\r" in line[:-2]:
            return 0
        if self.in_header:
            # Line by line, _header() amounts to these three tests.
            self.hops += (line[:9].lower() == b"delivered") + (line[:8].lower() == b"received")
            if line == b"\r\n":
                self.in_header = False
        self.put(line[:-2] + b"\n")
        return len(line)

    def _step(self, ch: int) -> str | None:
        state = self.state
        if state in (0, 1, 2) and ch == 0x0A:
            return "stray_newline"
        if state == 0:
            if ch == 0x0D:
                self.state = 4
                return None
        elif state == 1:
            if ch == 0x2E:
                self.state = 2
                return None
            if ch == 0x0D:
                self.state = 4
                return None
            self.state = 0
        elif state == 2:
            if ch == 0x0D:
                self.state = 3
                return None
            self.state = 0
        elif state == 3:
            if ch == 0x0A:
                return "end"
            self.put(b".\r")
            if ch == 0x0D:
                self.state = 4
                return None
            self.state = 0
        elif state == 4:
            if ch == 0x0A:
                self.state = 1
            elif ch != 0x0D:
                self.put(b"\r")
                self.state = 0
        self.put(bytes((ch,)))
        return None
