"""batch.attempt_intervals: the one definition of a Batch job's instance time (spend and the status page)."""

from __future__ import annotations

from pdf2md.batch import attempt_intervals, attempt_seconds
from pdf2md.status import _attempt_intervals

RETRIED = {"status": "RUNNING", "startedAt": 50_000, "attempts": [
    {"startedAt": 1_000, "stoppedAt": 4_000},   # a Spot reclaim after 3 s
    {"startedAt": 10_000, "stoppedAt": 9_000},  # a clock that ran backwards: no time counted
    {"startedAt": None, "stoppedAt": 12_000},   # never started on an instance
]}


def test_finished_attempts_then_the_running_one_open_or_closed_at_now() -> None:
    assert attempt_intervals(RETRIED) == [(1_000, 4_000), (50_000, None)]
    assert attempt_intervals(RETRIED, now_ms=56_000) == [(1_000, 4_000), (50_000, 56_000)]
    assert attempt_intervals(RETRIED, now_ms=40_000)[-1] == (50_000, 50_000), "a clock behind the start counts nothing"
    assert attempt_intervals({"status": "SUCCEEDED", "startedAt": 5, "attempts": []}) == []


def test_spend_and_the_status_curve_read_the_same_intervals() -> None:
    assert attempt_seconds(RETRIED, now_ms=56_000) == 3 + 6
    assert attempt_seconds({"status": "FAILED"}) == 0
    assert _attempt_intervals(RETRIED) == [(1.0, 4.0), (50.0, None)]
