"""tcprules for the simulator: compile the scenario's rules to a real cdb, look up as tcpserver.

The rules text is compiled with server.tcp.rules (ucspi-tcp 0.88's syntax and
keys) into ``WORKDIR/tcp.smtp.cdb`` once, and each smtp step looks up its
TCPREMOTEIP/TCPREMOTEHOST/TCPREMOTEINFO as tcpserver does before starting
qmail-smtpd: a ``deny`` means no session at all, an ``allow`` adds its
variables (``RELAYCLIENT=""``) to the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.targets.base import StepError


def lookup(rules: str, workdir: Path, env: Mapping[str, str]) -> dict[str, str] | None:
    """The variables the matching rule sets, or None when it denies the connection."""
    from server import cdb
    from server.tcp import rules as tcprules

    path = workdir / "tcp.smtp.cdb"
    if not path.exists():
        (workdir / "tcp.smtp").write_text(rules)
        try:
            cdb.write(path, tcprules.compile_rules(rules.encode()))
        except tcprules.RulesSyntaxError as exc:
            raise StepError(f"tcprules: {exc}") from exc
    reader = cdb.Reader.open(path)
    decision = tcprules.lookup(
        reader, env.get("TCPREMOTEIP", ""), env.get("TCPREMOTEHOST"), env.get("TCPREMOTEINFO")
    )
    if decision is not None and decision.deny:
        return None
    out: dict[str, str] = {}
    tcprules.apply_env(out, decision)
    return out
