"""What the tests that play on real targets need, and their skips when it
is not there:

- the live target (our programs as processes on loopback): private
  namespaces, or root to bind port 25 on 127.x addresses (:data:`needs_live`);
- a real netqmail-1.06 home that the differential tests run beside ours:
  /var/qmail-ref, or the one ``$QMAILSIM_REFERENCE_QMAIL`` names (built by
  the user from stock sources with that path as conf-qmail; see
  docs/conformance.md) (:func:`needs_reference`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import netns

needs_live = pytest.mark.skipif(
    not netns.available() and os.geteuid() != 0,
    reason=f"the live target needs namespaces or root: {netns.why_unavailable()}",
)

REFERENCE = Path(os.environ.get("QMAILSIM_REFERENCE_QMAIL", "/var/qmail-ref"))


def needs_reference(program: str) -> pytest.MarkDecorator:
    """Skip unless the reference home has ``bin/PROGRAM``."""
    return pytest.mark.skipif(
        not (REFERENCE / "bin" / program).exists(),
        reason=f"no netqmail-1.06 home at {REFERENCE} (set QMAILSIM_REFERENCE_QMAIL)",
    )
