"""qmail-showctl's output read back into control files (harness.showctl)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import showctl

# printable, no leading/trailing blanks (control_readline strips them), no '#' lines
word = st.from_regex(r"[!-~](?:[ -~]{0,30}[!-~])?", fullmatch=True).filter(
    lambda w: not w.startswith("#")
)


def files_of(kind: str) -> st.SearchStrategy[str]:
    if kind == "int":
        return st.integers(0, 10**9).map(lambda n: f"{n}\n")
    if kind == "lst":
        return st.lists(word, min_size=1, max_size=5).map(lambda xs: "".join(f"{x}\n" for x in xs))
    return word.map(lambda w: f"{w}\n")


controls = st.fixed_dictionaries(
    {}, optional={name: files_of(kind) for name, (kind, _, _) in showctl.SHOWN.items()}
)


@given(controls)
def test_format_then_parse_gives_the_files_back(files: dict[str, str]) -> None:
    assert showctl.parse(showctl.format(files)) == files


@given(st.text(max_size=300))
def test_any_text_parses_or_says_which_line_is_wrong(text: str) -> None:
    try:
        got = showctl.parse(text)
    except showctl.ShowctlError:
        return
    assert set(got) <= set(showctl.SHOWN)


def test_a_real_looking_excerpt() -> None:
    text = (
        "qmail home directory: /var/qmail.\n\nme: My name is mx.site.example.\n\n"
        "queuelifetime: Message lifetime in the queue is 86400 seconds.\n\n"
        "smtproutes: \nSMTP route: :relay.isp.example\nSMTP route: far.example:[10.0.0.1]:2525\n\n"
        "timeoutremote: (Default.) SMTP client data timeout is 1200 seconds.\n"
    )
    assert showctl.parse(text) == {
        "me": "mx.site.example\n",
        "queuelifetime": "86400\n",
        "smtproutes": ":relay.isp.example\nfar.example:[10.0.0.1]:2525\n",
    }


def test_a_line_that_is_not_showctl_s_is_an_error() -> None:
    with pytest.raises(showctl.ShowctlError, match="queuelifetime"):
        showctl.parse("\nqueuelifetime: a week or so\n")
