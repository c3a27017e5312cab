"""What the extra outputs cost and how a run reports them: the estimate counts their PUTs, the report and the
status facts name the outputs chosen and the figures written."""

from __future__ import annotations

from typing import Any

import pytest

from pdf2md.budget import S3_PUT_USD, Price, estimate
from pdf2md.contracts import RoundSummary
from pdf2md.report import build_report, format_report
from pdf2md.run_state import RunConfig, RunState
from tests.test_run_state import PARAMS, PLAN

PRICE = Price(1.0, "fallback")


def test_the_default_estimate_is_unchanged_and_extra_outputs_add_their_puts() -> None:
    base = estimate(1000, 1.0, 1, PRICE)
    assert estimate(1000, 1.0, 1, PRICE, pdfs=100, outputs=("markdown",)) == base
    with_json = estimate(1000, 1.0, 1, PRICE, pdfs=100, outputs=("markdown", "json", "page-markers"))
    assert with_json.extra_puts == 100 and with_json.cost_usd == pytest.approx(base.cost_usd + 100 * S3_PUT_USD)
    everything = estimate(1000, 1.0, 1, PRICE, pdfs=100, outputs=("markdown", "json", "figures"))
    assert everything.extra_puts == 100 + 500  # a figure every second page, assumed
    assert "600 PUTs for the outputs beyond the Markdown" in everything.describe()


def _state(**over: Any) -> RunState:
    return RunState(RunConfig.from_params("r", {**PARAMS, **over}), PLAN, 1000.0)


def test_the_report_names_the_outputs_and_counts_the_figures() -> None:
    rounds = [RoundSummary(round=0, converted=4, pages=20, figures=7), RoundSummary(round=1, converted=1, pages=2, figures=1)]
    report = build_report(_state(outputs=["markdown", "figures"]), rounds, 3600, 0.5, [], now=1100.0)
    assert (report.outputs, report.figures) == (["markdown", "figures"], 8)
    assert "(markdown, figures; 8 figure(s))" in format_report(report)
    plain = build_report(_state(), rounds[:1], 3600, 0.5, [], now=1100.0)
    assert plain.outputs == ["markdown"] and format_report(plain).endswith("md/ (markdown)")


def test_status_facts_show_the_outputs_chosen(s3: Any, batch: Any, bucket: str) -> None:
    from pdf2md.status import run_status

    facts = run_status(s3, batch, f"s3://{bucket}/runs/", "r1", outputs=("markdown", "json"))
    assert facts["outputs"] == ["markdown", "json"] and facts["figures"] is None
