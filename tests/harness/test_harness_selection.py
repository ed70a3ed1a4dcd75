"""``-k`` expressions and ``--tag``: choosing scenarios like pytest does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.scenario import load_text
from harness.selection import BadExpression, matches_k, select

[DNS, SMTP] = load_text(
    "- {name: CNAME lookup fails, tags: [dns, deferral], steps: []}\n"
    "- {name: greeting, tags: [smtp], steps: []}\n",
    "scenarios/x.yaml",
)


@pytest.mark.parametrize(
    ("expr", "dns", "smtp"),
    [
        ("dns", True, False),
        ("CNAME", True, False),
        ("not dns", False, True),
        ("dns or smtp", True, True),
        ("dns and smtp", False, False),
        ("(dns or smtp) and not greeting", True, False),
        ("x.yaml", True, True),
    ],
)
def test_k_expressions(expr: str, dns: bool, smtp: bool) -> None:
    assert (matches_k(expr, DNS), matches_k(expr, SMTP)) == (dns, smtp)


def test_tags_select_any_of_them() -> None:
    assert select([DNS, SMTP], None, ["smtp", "nothing"]) == [SMTP]
    assert select([DNS, SMTP], "deferral", ["dns"]) == [DNS]


@settings(deadline=None)  # a busy CI machine is slow, not wrong
@given(st.lists(st.sampled_from(["dns", "smtp", "and", "or", "not", "(", ")", "x"]), max_size=8))
def test_any_expression_selects_or_is_refused(tokens: list[str]) -> None:
    try:
        assert matches_k(" ".join(tokens), DNS) in (True, False)
    except BadExpression as exc:
        assert "-k" in str(exc)
