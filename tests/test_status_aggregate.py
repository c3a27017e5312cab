"""Status at any number of shards: the run's facts come from the progress bands (one GET per 100
shards), each round as an aggregate; per-shard rows only when asked for, a page at a time."""

from __future__ import annotations

import time
from typing import Any

from pdf2md import progress
from pdf2md.contracts import RunLayout, ShardProgress, ShardState
from pdf2md.status import ShardTable, round_progress, run_status
from pdf2md.status_text import format_status

RUN_ID = "manual__2026-11-30T08:00:00+00:00"


def _record(shard: int, state: ShardState, converted: int, now: float, assigned: int = 10) -> ShardProgress:
    return ShardProgress(RUN_ID, 0, shard, 1, state, assigned, converted=converted, pages=converted * 2,
                         started_at=now - 100, updated_at=now - 5)


def _gets(s3: Any) -> list[str]:
    """Keys of every GetObject the client sends from now on."""
    keys: list[str] = []
    s3.meta.events.register("before-parameter-build.s3.GetObject", lambda params, **_: keys.append(params["Key"]))
    return keys


def test_run_status_reads_bands_and_shows_aggregates_with_rows_on_demand(s3: Any, batch: Any, bucket: str) -> None:
    runs_uri = f"s3://{bucket}/runs/"
    layout = RunLayout.for_run(runs_uri, RUN_ID)
    now = time.time()
    for record in (_record(0, ShardState.DONE, 10, now), _record(1, ShardState.RUNNING, 2, now),
                   _record(2, ShardState.INTERRUPTED, 4, now), _record(150, ShardState.FAILED, 0, now)):
        progress.publish(s3, layout, record)
    gets = _gets(s3)

    facts = run_status(s3, batch, runs_uri, RUN_ID, job_queue="pdf2md-spot", now=now)
    assert sorted(k for k in gets if "progress" in k) == [layout.band_key(0, 0), layout.band_key(0, 1)], "bands, never a shard's own record"
    (rnd,) = facts["rounds"]
    assert "shard_table" not in rnd
    p = rnd["progress"]
    assert p["by_state"] == {"done": 1, "failed": 1, "interrupted": 1, "running": 1}
    assert (p["shards"], p["assigned"], p["done"], p["pages"]) == (4, 40, 16, 32)
    assert p["histogram"][2] == 1 and p["histogram"][-1] == 3, "the running shard 20 % done; the others have ended"
    assert ([s["shard"] for s in p["slowest"]], p["interrupted"], p["failed_shards"]) == ([1], [2], [150])
    assert facts["live"] and facts["totals"]["shards_by_state"] == p["by_state"] and facts["totals"]["converted"] == 16
    text = format_status(facts)
    assert "  interrupted #2\n" in text and "  failed   #150\n" in text and "  slowest #1 2/10" in text
    assert "      0 done" not in text, "no line per shard unless asked for"

    page = run_status(s3, batch, runs_uri, RUN_ID, job_queue="pdf2md-spot", now=now,
                      shard_table=ShardTable(0, offset=1, limit=2))["rounds"][0]["shard_table"]
    assert (page["total"], [(s["shard"], s["state"]) for s in page["rows"]]) == (4, [(1, "running"), (2, "interrupted")])
    every = run_status(s3, batch, runs_uri, RUN_ID, job_queue="pdf2md-spot", now=now, shard_table=ShardTable())
    assert "\n    150 failed " in format_status(every)


def test_batch_knows_the_lost_and_the_pending() -> None:
    now = time.time()
    records = [_record(0, ShardState.RUNNING, 3, now), _record(1, ShardState.RUNNING, 5, now)]
    view = round_progress(0, records, {0: "FAILED", 1: "RUNNING", 2: "RUNNABLE", 3: "SUCCEEDED"}, 4, now)
    assert view["by_state"] == {"lost": 1, "no-record": 1, "pending": 1, "running": 1}
    assert view["lost"] == [0] and [s["shard"] for s in view["slowest"]] == [1] and view["shards"] == 4
