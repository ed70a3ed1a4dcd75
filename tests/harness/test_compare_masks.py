"""compare's masks for qp_N after an underscore and for the per-run work directory."""

from __future__ import annotations

from harness.compare import WORKDIR_PREFIX, normalise


def test_qp_after_an_underscore() -> None:
    assert normalise("deferral: condredirect:_qp_7139/forward:_qp_12/") == (
        "deferral: condredirect:_qp_N/forward:_qp_N/"
    )
    assert normalise("did_0+1+0/qp_18865/") == "did_0+1+0/qp_N/"
    assert normalise("squp_123") == "squp_123"  # a word that ends in qp is not a qp


def test_work_directory_whole_or_cut() -> None:
    path = f"/var/tmp/qmail-sim/{WORKDIR_PREFIX}ab_3x9z1"
    assert normalise(f"deferral: Unable_to_open_{path}/homes/alice/mbox:_") == (
        "deferral: Unable_to_open_<workdir>/homes/alice/mbox:_"
    )
    assert normalise(f"deferral: {path[:-3]}") == "deferral: <workdir>"
    assert normalise("/var/tmp/other/homes") == "/var/tmp/other/homes"
