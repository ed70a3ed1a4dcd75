"""A user's ``modes:`` in a scenario: octal permission bits of paths in the home."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.scenario import ScenarioError, load_text

BASE = """\
name: modes
users:
  bob: {mbox: Mailbox, modes: {%s}}
steps:
  - run: idle
"""


def test_modes_are_octal_as_written() -> None:
    """YAML would read a bare 0400 as octal and 400 as decimal; a mode is the text."""
    (scenario,) = load_text(BASE % '"Mailbox": 0400, ".": "0750", "Maildir/tmp": 500')
    assert scenario.users["bob"].modes == {"Mailbox": 0o400, ".": 0o750, "Maildir/tmp": 0o500}


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ('"Mailbox": "0999"', "not an octal mode"),
        ('"Mailbox": rw-r--r--', "not an octal mode"),
        ('"../alice/Mailbox": "0400"', "../alice/Mailbox"),
        ('"/etc/passwd": "0777"', "/etc/passwd"),
    ],
)
def test_bad_modes_name_the_file_line_and_key(item: str, words: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_text(BASE % item, "modes.yaml")
    text = str(caught.value)
    assert "modes.yaml:3" in text and words in text, text


@given(st.text(max_size=6))
def test_any_mode_text_loads_or_is_a_scenario_error(mode: str) -> None:
    text = BASE % f'"Mailbox": {mode!r}'.replace("'", '"')
    try:
        (scenario,) = load_text(text)
    except ScenarioError:
        return
    assert 0 <= scenario.users["bob"].modes["Mailbox"] <= 0o777
