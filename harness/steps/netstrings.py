"""The ``qmtp`` and ``qmqp`` steps: a QMTP or QMQP session replayed (see session.py).

The client's bytes are ``R:`` lines (netstrings written out, with ``\\n``
escapes); the server's output is split into netstrings, and each ``S:`` line
matches one whole netstring, length and comma included (``S: 23:Kok ...,`` or
``S: ~ ^\\d+:Kok \\d+ qp \\d+,$``). Bytes after the last whole netstring show
as one more line ending in ``<incomplete>``.
"""

from __future__ import annotations

import re

from harness.scenario.model import SessionStep
from harness.steps.session import replay
from harness.targets.base import Target

INCOMPLETE = " <incomplete>"
_LENGTH = re.compile(rb"(\d{1,9}):")


def server_netstrings(output: bytes) -> list[str]:
    """``output`` as netstrings (latin-1 text), the rest as one last piece."""
    pieces: list[str] = []
    pos = 0
    while pos < len(output):
        m = _LENGTH.match(output, pos)
        end = m.end() + int(m.group(1)) + 1 if m else -1
        if m is None or end > len(output) or output[end - 1 : end] != b",":
            pieces.append(output[pos:].decode("latin-1") + INCOMPLETE)
            break
        pieces.append(output[pos:end].decode("latin-1"))
        pos = end
    return pieces


def run(step: SessionStep, target: Target) -> None:
    replay(step, target)
