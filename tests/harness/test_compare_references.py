"""Which reference plays a scenario (compare --patched-reference), and what the
reference target does before qmail-send's first run (harness.targets.qmail)."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.commands.compare import patched_reference, reference_for
from harness.runner import bundled_suite, load_all
from harness.scenario import Scenario
from harness.targets.livepeers import scripted_delays
from harness.targets.qmail import _terminates_first
from server.programs import PATCHES


def loaded(name: str) -> list[Scenario]:
    scenarios, errors = load_all([bundled_suite() / name])
    assert not errors
    return scenarios


def test_patched_reference_names_patches_and_a_home() -> None:
    patches, target = patched_reference("date-localtime,qmail-103=qmail:/var/qmail-dl")
    assert patches == {"date-localtime", "qmail-103"}
    assert target == "qmail:/var/qmail-dl"


@pytest.mark.parametrize(
    "text", ["qmail-103", "qmail-103=live", "qmail-103=qmail:", "no-such-patch=qmail:/x", "=sim"]
)
def test_patched_reference_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        patched_reference(text)


@given(
    st.lists(st.sampled_from(PATCHES), min_size=1, unique=True),
    st.text(alphabet="abcdefghij/-_.0123456789", min_size=1),
)
def test_patched_reference_round_trip(patches: list[str], home: str) -> None:
    parsed = patched_reference(f"{','.join(patches)}=qmail:{home}")
    assert parsed == (frozenset(patches), f"qmail:{home}")


@given(st.text(max_size=40))
def test_patched_reference_parses_or_refuses(text: str) -> None:
    try:
        patches, target = patched_reference(text)
    except argparse.ArgumentTypeError:
        return
    assert target.startswith("qmail:") and patches <= set(PATCHES)


def test_a_scenario_goes_to_the_build_with_exactly_its_patches() -> None:
    args = argparse.Namespace(
        reference="qmail:/var/qmail",
        reference_patches=(),
        patched_reference=[
            (frozenset({"qmail-103"}), "qmail:/var/qmail-103"),
            (frozenset({"smtpd-relay-reject"}), "qmail:/var/qmail-rr"),
        ],
    )
    by_patches = {s.patches: reference_for(s, args) for s in loaded("dns/oversize.yaml")}
    assert by_patches[("qmail-103",)] == ("qmail:/var/qmail-103", ("qmail-103",))
    assert by_patches[()] == ("qmail:/var/qmail", ())
    (localtime, *_) = [s for s in loaded("patches") if s.patches == ("date-localtime",)]
    assert reference_for(localtime, args) == ("qmail:/var/qmail", ())  # no such build given


def test_term_before_any_run_is_known_at_the_start() -> None:
    (term,) = loaded("harness/signal-term.yaml")
    assert _terminates_first(term)
    assert not any(_terminates_first(s) for s in loaded("send/startup-exit.yaml"))


def test_scripted_delays_are_listed_per_peer_and_stage() -> None:
    slow, late = loaded("harness/peer-delays.yaml")
    assert scripted_delays(slow.peers) == [("127.0.2.70", "greeting", 900.0)]
    assert scripted_delays(late.peers) == [("127.0.2.70", "end", 120.0)]
    twice = loaded("remote/timeouts.yaml")[-1]
    assert scripted_delays(twice.peers) == [("127.0.2.10", "end", 1500.0)]  # an attempt's
    assert not any(scripted_delays(s.peers) for s in loaded("harness/remote-delivery.yaml"))
