"""`pdf2md status` on the run the page tests watched, and the pure parts of pdf2md.status."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from pdf2md.cli import add_status_parser
from pdf2md.contracts import ShardProgress, safe_run_id
from pdf2md.run_state import batch_job_name_prefix
from pdf2md.status import cumulative_busy_seconds, throughput_series
from pdf2md.status_text import bar, format_status
from tests.conftest import REPO
from tests.ui.conftest import BROKEN, BUDGET_USD, LiveRun


def _status(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pdf2md")
    add_status_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status", *argv])
    return int(args.func(args))


@pytest.mark.slow
def test_status_prints_the_latest_run_as_json_and_as_a_table(finished_run: LiveRun, capsys: pytest.CaptureFixture[str]) -> None:
    assert _status("--runs-uri", finished_run.runs_uri, "--json") == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["run_id"] == safe_run_id(finished_run.run_id)
    assert facts["state"] == "succeeded" and not facts["live"]
    assert facts["spend"]["budget_usd"] == BUDGET_USD, "from the report once the run is over"
    assert {c["error_class"] for c in facts["failures"]["by_class"]} == set(BROKEN.values())

    assert _status(finished_run.run_id, "--runs-uri", finished_run.runs_uri, "--watch", "--interval", "0.1") == 0
    table = capsys.readouterr().out
    (REPO / "test-artifacts" / "pdf2md-status.txt").write_text(table)
    assert table.startswith(f"pdf2md run {facts['run_id']}: SUCCEEDED")
    assert "round 1 (rerun)" in table and "interrupted" in table
    assert "[########################]" in table, "a finished round's full bar"
    assert f"  interrupted #{finished_run.reclaimed_shard}\n" in table, "interrupted shards by name"
    assert "  done % " in table and "\n      0 " not in table, "each round's distribution, no line per shard"
    for error_class in BROKEN.values():
        assert f"  {error_class} " in table
    assert f"of ${BUDGET_USD:.2f} [" in table

    assert _status(finished_run.run_id, "--runs-uri", finished_run.runs_uri, "--shards") == 0
    shards = capsys.readouterr().out
    assert re.search(rf"\n +{finished_run.reclaimed_shard} interrupted ", shards), "the per-shard lines on demand"
    assert re.search(r"\n +0 (done|interrupted) +\[", shards)


def test_status_without_runs_or_with_a_bad_uri_is_a_usage_error(aws_endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _status("--runs-uri", f"s3://{bucket}/runs/") == 2
    assert "no runs under" in capsys.readouterr().err
    assert _status("--runs-uri", "/local/runs") == 2
    assert "not an s3:// URI" in capsys.readouterr().err


def test_job_names_match_the_submit_task() -> None:
    from pdf2md.run_state import job_name

    run_id = "manual__2026-11-23T10:52:45.203397+00:00"
    assert job_name(run_id, 3) == batch_job_name_prefix(run_id) + "-r3"


def test_spend_curve_is_exact_at_the_span_boundaries() -> None:
    t, seconds = cumulative_busy_seconds([(0.0, 10.0), (5.0, 15.0), (20.0, 20.0)])
    assert t == [0.0, 5.0, 10.0, 15.0]
    assert seconds == [0.0, 5.0, 15.0, 20.0]
    assert cumulative_busy_seconds([]) == ([], [])


def test_throughput_spreads_each_shard_over_its_time_and_carries_running_ones_to_now() -> None:
    def rec(shard: int, start: float, updated: float, pages: int, state: str = "done") -> ShardProgress:
        return ShardProgress(run_id="r", round=0, shard=shard, attempt=1, state=state, assigned=2, converted=2,
                             pages=pages, started_at=start, updated_at=updated)

    series = throughput_series([rec(0, 1000, 1060, 60), rec(1, 1030, 1090, 30, "running")], now=1120)
    assert series["t"] == [1000, 1030, 1060, 1090, 1120]
    assert series["pages"] == [0, 30, 75, 90, 90]
    assert series["pdfs"][-1] == 4
    assert series["pages_per_min"] == [0.0, 60.0, 90.0, 30.0, 0.0]


def test_bar() -> None:
    assert bar(1, 4, width=8) == "[##......]"
    assert bar(3, None, width=4) == "[    ]"


def test_airflows_word_makes_a_run_that_wrote_nothing_look_failed() -> None:
    from pdf2md.status import empty_status, with_airflow_outcome

    tasks = [{"task_id": "plan", "message": "AirflowFailException: bad run configuration: output_uri must not be inside input_uri"},
             {"task_id": "report", "message": "AirflowFailException: planning failed"}]
    facts = with_airflow_outcome(empty_status("manual__2026-11-29T10:00:00+00:00", None, now=0.0), "failed", tasks)
    assert (facts["state"], facts["live"], facts["message"]) == ("failed", False, "the Airflow run failed in task plan")
    text = format_status(facts)
    assert text.startswith("pdf2md run manual__2026-11-29T10-00-00-00-00-3fa77298: FAILED")
    assert "  failed task plan: AirflowFailException: bad run configuration" in text
    queued = with_airflow_outcome(empty_status("r", None, now=0.0), "queued", [])
    assert queued["state"] == "pending" and "queued in Airflow" in queued["message"]
    halted = with_airflow_outcome({**empty_status("r", None), "state": "halted-budget", "message": "over"}, "failed", tasks)
    assert (halted["state"], halted["message"]) == ("halted-budget", "over")


def test_the_cli_defaults_to_the_runs_uri_the_dag_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    from pdf2md.status import default_runs_uri

    for name in ("PDF2MD_RUNS_URI", "PDF2MD_OUTPUT_URI"):
        monkeypatch.delenv(name, raising=False)
    assert default_runs_uri() == "s3://pdf2md-output/pdf2md-runs/"
    monkeypatch.setenv("PDF2MD_OUTPUT_URI", "s3://my-md/out/")
    assert default_runs_uri() == "s3://my-md/pdf2md-runs/"
