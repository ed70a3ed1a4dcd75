"""The real netqmail-1.06 home that the differential tests run beside ours:
/var/qmail-ref, or the one ``$QMAILSIM_REFERENCE_QMAIL`` names (built by the
user from stock sources with that path as conf-qmail; see docs/conformance.md).
Where there is none, those tests skip and say so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REFERENCE = Path(os.environ.get("QMAILSIM_REFERENCE_QMAIL", "/var/qmail-ref"))


def needs_reference(program: str) -> pytest.MarkDecorator:
    """Skip unless the reference home has ``bin/PROGRAM``."""
    return pytest.mark.skipif(
        not (REFERENCE / "bin" / program).exists(),
        reason=f"no netqmail-1.06 home at {REFERENCE} (set QMAILSIM_REFERENCE_QMAIL)",
    )
