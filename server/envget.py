"""env.c's env_get(), giving the bytes a program was started with.

A variable that is set counts even when empty. Python decodes the
environment as UTF-8 with surrogate escapes; encoding the same way gives back
the exact bytes of the value, which qmail-smtpd and qmail-inject put into
headers and envelopes as they are.
"""

from __future__ import annotations

from collections.abc import Mapping


def env_bytes(env: Mapping[str, str], *names: str, default: bytes | None = None) -> bytes | None:
    """The value of the first of ``names`` that is set, else ``default``."""
    for name in names:
        if name in env:
            return env[name].encode("utf-8", "surrogateescape")
    return default
