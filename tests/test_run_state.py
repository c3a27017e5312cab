"""The records the tasks hand each other, and the report built from them: plain modules, no AWS, no Airflow."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from pdf2md.contracts import ErrorKind, FailureRecord, JobSettings, ManifestEntry, Plan, RoundSummary, RunReport, RunStatus
from pdf2md.report import build_report, format_report, halted_report, settle
from pdf2md.run_state import (
    OrderKey,
    RunConfig,
    RunState,
    batch_job_name_prefix,
    job_name,
    round_order,
    runs_uri_for,
)

PARAMS: dict[str, Any] = {
    "input_uri": "s3://in-bucket/pdfs/", "output_uri": "s3://out-bucket/md/", "runs_uri": None, "array_size": 10,
    "backend": "auto", "job_queue": "q", "job_definition": "d", "budget_usd": 10.0, "max_rerun_rounds": 2,
    "retry_failed": False, "dry_run": False, "seconds_per_page": 1.0, "pages_in_parallel": 1, "bytes_per_page": 100_000,
    "price_per_hour_usd": 0.5, "instance_type": "g4dn.xlarge", "pdf_timeout_s": 600, "pdf_memory_mb": 4096,
    "max_pages": 5000, "passwords_uri": None, "inventory_uri": None, "aws_conn_id": "aws_default", "poll_interval_s": 30,
}
PLAN = Plan(manifest_uri="s3://out-bucket/pdf2md-runs/r/round-000/manifest/", round=0, listed=10, skipped=3,
            known_failures=1, collisions=1, entries=5, bytes=500_000, array_size=5)


def _state(**overrides: Any) -> RunState:
    return RunState(RunConfig.from_params("manual__2026-11-29T10:00:00+00:00", {**PARAMS, **overrides}), PLAN, 1000.0)


def test_run_state_round_trips_through_json_as_xcom_stores_it() -> None:
    state = _state()
    assert RunState.from_xcom(json.loads(json.dumps(state.to_xcom()))) == state
    assert state.config.runs_uri == runs_uri_for(PARAMS["output_uri"]) == "s3://out-bucket/pdf2md-runs/"
    assert str(state.layout.run) == "s3://out-bucket/pdf2md-runs/manual__2026-11-29T10-00-00-00-00-3fa77298"


@pytest.mark.parametrize("bad", [None, "text", {"config": {}}, {"plan": {}, "started_at": 1}])
def test_anything_else_is_not_a_run_state(bad: object) -> None:
    with pytest.raises((TypeError, KeyError)):
        RunState.from_xcom(bad)


def test_bad_settings_are_refused_all_at_once() -> None:
    with pytest.raises(ValueError, match="output_uri must not be inside input_uri.*backend must be one of"):
        RunConfig.from_params("r", {**PARAMS, "output_uri": "s3://in-bucket/pdfs/md/", "backend": "magic"})
    with pytest.raises(ValueError, match="missing settings: aws_conn_id"):
        RunConfig.from_params("r", {k: v for k, v in PARAMS.items() if k != "aws_conn_id"})


def test_a_rounds_order_is_what_the_submit_operator_and_the_children_read() -> None:
    state = _state(passwords_uri="s3://out-bucket/passwords.json")
    order = round_order(state, 1, "s3://m/", 4, 0.2, 3.5, "spot price history").to_xcom()
    assert set(order) == {OrderKey.JOB_NAME, OrderKey.ARRAY_PROPERTIES, OrderKey.CONTAINER_OVERRIDES,
                          OrderKey.PRICE_PER_HOUR, OrderKey.PRICE_SOURCE, OrderKey.BUDGET_LEFT_USD}
    assert order[OrderKey.JOB_NAME] == job_name(state.config.run_id, 1) == "pdf2md-manual__2026-11-29T10-00-00-00-00-3fa77298-r1"
    assert order[OrderKey.ARRAY_PROPERTIES] == {"size": 4}
    env = {e["name"]: e["value"] for e in order[OrderKey.CONTAINER_OVERRIDES]["environment"]}
    settings = JobSettings.from_env(env)
    assert (settings.manifest_uri, settings.round, settings.array_size, settings.run_uri, settings.passwords_uri) == (
        "s3://m/", 1, 4, str(state.layout.run), "s3://out-bucket/passwords.json")


def test_job_names_stay_within_batchs_limit() -> None:
    run_id = "manual__" + "x" * 300
    assert len(job_name(run_id, 3)) <= 128 and job_name(run_id, 3).startswith(batch_job_name_prefix(run_id))
    assert job_name("scheduled__2026.1", 0) == "pdf2md-scheduled__2026-1-9eadc496-r0", "no dots in Batch job names"


def _failure(key: str, error_class: ErrorKind) -> FailureRecord:
    entry = ManifestEntry(bucket="in-bucket", key=key, rel=key, size=1, etag="e", mtime=0.0)
    return FailureRecord.of(entry, error_class, "boom", shard=0, round=0, run_id="r")


def test_report_adds_up_the_rounds_and_fails_only_on_retryable_work_left() -> None:
    first = RoundSummary(round=0, planned=5, converted=2, skipped=1, pages=30, permanent_by_class={"corrupt": 1},
                         retryable_by_class={"interrupted": 1})
    second = RoundSummary(round=1, planned=1, converted=1, pages=10)
    failures = [_failure("a.pdf", ErrorKind.CORRUPT)]
    report = build_report(_state(), [first, second], instance_seconds=7200, price_per_hour=0.5, failures=failures, now=1100.0)
    assert report.status == RunStatus.SUCCEEDED and report.rounds == 2
    assert (report.listed, report.planned, report.converted, report.skipped, report.known_failures) == (10, 5, 3, 4, 1)
    assert report.failed_by_class == {"corrupt": 1, "key-collision": 1} and report.failed == 2
    assert (report.gpu_hours, report.estimated_cost_usd, report.wall_seconds, report.pages_per_hour) == (2.0, 1.0, 100.0, 1440.0)
    assert report.failures[0]["key"] == "a.pdf"

    left = build_report(_state(), [first], 0, 0.5, [], now=1100.0)
    assert left.status == RunStatus.FAILED and "1 PDF(s) still failing" in left.message
    assert left.failed_by_class["interrupted"] == 1
    assert build_report(_state(dry_run=True), [], 0, 0.5, [], now=1100.0).status == RunStatus.DRY_RUN


def test_a_recorded_halt_wins_then_a_wait_stopped_over_budget() -> None:
    def built() -> RunReport:
        return build_report(_state(), [RoundSummary(round=0, converted=5)], 3600, 0.5, [], now=1100.0)

    halted = halted_report(_state(), RunStatus.HALTED_BUDGET, "estimated cost is over the budget")
    assert (halted.listed, halted.planned, halted.budget_usd) == (10, 5, 10.0)
    assert settle(built(), halted, over_budget=True).message == "estimated cost is over the budget"
    stopped = settle(built(), None, over_budget=True)
    assert stopped.status == RunStatus.HALTED_BUDGET and stopped.message.startswith("budget exceeded: $0.5000 spent of $10.00")
    assert settle(built(), None, over_budget=False).status == RunStatus.SUCCEEDED


def test_format_report() -> None:
    report = build_report(_state(), [RoundSummary(round=0, converted=5, pages=12)], 3600, 0.5, [], now=1100.0)
    lines = format_report(report).splitlines()
    assert lines[0] == ("pdf2md run manual__2026-11-29T10:00:00+00:00: SUCCEEDED - every PDF is converted or recorded "
                        "as a permanent failure")
    assert lines[2] == "  failed   key-collision: 1"
    assert lines[4] == "  cost     1.0000 instance-hours × $0.5000/h = $0.5000 (budget $10.00)"


def _strict(text: str) -> Any:
    """JSON as the standard has it: no NaN or Infinity (json.loads takes them by default, other readers refuse)."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_the_report_is_strict_json_even_when_a_figure_is_not_a_number() -> None:
    # RunConfig refuses such figures now; a report of an older state, or of a bug upstream, must still be strict JSON
    good = _state()
    state = dataclasses.replace(good, config=dataclasses.replace(good.config, price_per_hour_usd=float("nan"), budget_usd=float("inf")))
    report = build_report(state, [RoundSummary(round=0, planned=5, converted=5, pages=10)], 3600.0, float("nan"), [], now=2000.0)
    data = _strict(report.to_json())
    assert data["price_per_hour_usd"] is None and data["estimated_cost_usd"] is None and data["budget_usd"] is None
    assert data["pages"] == 10 and data["gpu_hours"] == 1.0
