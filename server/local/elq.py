"""elq (elq.sh): ``maildir2mbox && exec elm "$@"``; see :mod:`server.local.mailreader`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from server.local.mailreader import run_reader
from server.programs import ProgramContext


def main(
    argv: list[str],
    env: Mapping[str, str],
    stdin: BinaryIO,
    stdout: BinaryIO,
    ctx: ProgramContext,
) -> int:
    return run_reader("elm", argv, env, stdin, stdout, ctx)
