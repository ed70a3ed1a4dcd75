"""Helpers for the record/reproduce tests: ``qmail-sim reproduce`` called in-process,
and ``qmail-sim capture`` through a fake DNS served on loopback."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from harness import capture
from harness.commands.reproduce import add_arguments, run
from harness.fakedns import FakeDns, serve
from harness.scenario.model import DnsSpec

HOST = "127.0.0.1"


def reproduce_args(*argv: str) -> argparse.Namespace:
    """``qmail-sim reproduce ARGV``'s parsed arguments."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def reproduce(*argv: str) -> int:
    """``qmail-sim reproduce ARGV``: its exit status."""
    return run(reproduce_args(*argv))


def capture_from(spec: DnsSpec, options: str = "") -> dict[str, Any]:
    """``qmail-sim capture far.example`` through a resolv.conf naming a fake DNS
    that serves ``spec`` on loopback, with ``options`` as the resolv.conf's last lines."""
    dns = FakeDns(spec, lambda: 0.0)

    async def main() -> dict[str, Any]:
        udp, tcp, port = await serve(dns, HOST, 0)
        try:
            conf = f"nameserver {HOST}:{port}\n{options}"
            return await asyncio.to_thread(capture.capture, "far.example", conf)
        finally:
            udp.close()
            tcp.close()
            await tcp.wait_closed()

    return asyncio.run(main())
