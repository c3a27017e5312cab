"""What a pdf2md run is doing, told from what the run writes to S3 and from the Batch API alone.

One function, `run_status`, assembles the facts; the status page (pdf2md/ui, mounted into Airflow by
plugins/pdf2md_plugin.py) serves them as JSON and `pdf2md status` (pdf2md.cli, drawn by
pdf2md.status_text) prints them, so both always agree. Nothing here parses arguments or draws.
Only Airflow knows that a run failed before it wrote anything, and why a task failed:
`with_airflow_outcome` adds that where Airflow is at hand (pdf2md.ui.airflow_runs reads it); without
it the CLI still works anywhere with S3 and Batch access.

Shard progress is read from each round's progress bands (pdf2md.progress: one GET per 100 shards) and
shown as the round's aggregate; per-shard rows only where a caller asks (`ShardTable`: the page's
"show the shards", a page at a time; `pdf2md status --shards`).

S3 keeps only each shard's latest progress record, so the throughput curve is reconstructed: every
shard's work is spread evenly between its start and its last update. The spend curve is exact: it is
the children's Batch attempt intervals × the price, the same sum the wait task budgets with.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pdf2md import batch as batch_api
from pdf2md import progress as progress_io
from pdf2md import s3 as s3io
from pdf2md.budget import DEFAULT_PRICE_PER_HOUR
from pdf2md.contracts import (
    DEFAULT_JOB_QUEUE,
    DEFAULT_OUTPUT_URI,
    ENV_OUTPUT_URI,
    ENV_RUNS_URI,
    ERROR_CLASSES,
    RoundSummary,
    RunLayout,
    RunReport,
    S3Uri,
    ShardProgress,
    ShardState,
    safe_run_id,
)
from pdf2md.reduce import failures_of_run
from pdf2md.run_state import batch_job_name_prefix, runs_uri_for

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

MAX_SERIES_POINTS = 240
"""Enough for a smooth curve on any screen; more points only cost bytes on every refresh."""
KEYS_PER_CLASS = 50
"""Offending keys listed per error class; the count is always complete."""
_ROUND_DIR = re.compile(r"round-(\d{3,})/$")
_JOB_ROUND = re.compile(r"-r(\d+)$")


# --- the facts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardTable:
    """Which per-shard rows to add to the facts: those of one round (None: every round), from `offset`,
    at most `limit` of them (None: all). The aggregate view never needs them."""

    round: int | None = None
    offset: int = 0
    limit: int | None = None


def run_status(
    s3: S3Client,
    batch: BatchClient,
    runs_uri: str,
    run_id: str,
    *,
    budget_usd: float | None = None,
    price_per_hour_usd: float | None = None,
    job_queue: str = DEFAULT_JOB_QUEUE,
    now: float | None = None,
    shard_table: ShardTable | None = None,
    outputs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Everything the page and the CLI show about one run, as plain JSON-able data.

    Shard progress comes from the rounds' progress bands (one GET per 100 shards), shown as each
    round's aggregate; the per-shard rows only where `shard_table` asks for them.
    The budget and price are known to S3 only once the report is written; callers that know them
    earlier (the page reads them from the run's configuration) pass them in.
    """
    now = time.time() if now is None else now
    layout = RunLayout.for_run(runs_uri, run_id)
    report = s3io.get_json(s3, layout.run.bucket, layout.report_key, RunReport)
    rounds = _round_numbers(s3, layout)
    jobs = _run_jobs(batch, job_queue, run_id)
    progress = {rnd: progress_io.read_round(s3, layout, rnd) for rnd in rounds}
    price, price_source = _price(price_per_hour_usd, report)
    budget = budget_usd if budget_usd is not None else (report.budget_usd if report else None)
    round_views = [_round_view(s3, layout, rnd, progress[rnd], jobs.get(rnd, []), now, shard_table) for rnd in rounds]
    live = report is None and (any(r["progress"]["by_state"].get(state) for r in round_views for state in ("running", "pending"))
                               or any(j["status"] in batch_api.ACTIVE for js in jobs.values() for j in js))
    return {
        "run_id": safe_run_id(run_id),
        "run_uri": str(layout.run),
        "generated_at": now,
        "live": live,
        "state": report.status if report else ("running" if live else ("pending" if not rounds else "stopped")),
        "message": report.message if report else "",
        "totals": _totals(round_views),
        "rounds": round_views,
        "throughput": throughput_series([p for recs in progress.values() for p in recs], now if live else None),
        "failures": _failures(s3, layout, len(rounds)),
        "spend": _spend(jobs, price, price_source, budget, now),
        "report": report.to_dict() if report else None,
        "outputs": list(outputs) if outputs else (report.outputs if report else None),
        "figures": report.figures if report else None,
    }


def empty_status(run_id: str, runs_uri: str | None, now: float | None = None) -> dict[str, Any]:
    """The facts of a run that wrote nothing anyone can read: it failed before planning, or its
    settings name no valid place for its artefacts."""
    return {"run_id": safe_run_id(run_id), "run_uri": runs_uri or "", "generated_at": time.time() if now is None else now,
            "live": False, "state": "pending", "message": "", "totals": _totals([]), "rounds": [],
            "throughput": throughput_series([], None), "failures": {"total": 0, "by_class": []},
            "spend": _spend({}, DEFAULT_PRICE_PER_HOUR, "fallback price", None, 0.0), "report": None}


def with_airflow_outcome(facts: dict[str, Any], airflow_state: str, failed_tasks: list[dict[str, str]]) -> dict[str, Any]:
    """Airflow's word on the run added to its facts: a failed DAG run shows as failed, with each
    failed task and its message, whatever its artefacts say (one that failed early has none)."""
    facts = {**facts, "airflow_state": airflow_state, "failed_tasks": failed_tasks}
    if airflow_state == "failed":
        first = failed_tasks[0] if failed_tasks else None
        facts["live"] = False
        if facts["state"] != "halted-budget":
            facts["state"] = "failed"
        if not facts["message"]:
            facts["message"] = f"the Airflow run failed in task {first['task_id']}" if first else "the Airflow run failed"
    elif airflow_state == "queued" and facts["state"] == "pending":
        facts["message"] = facts["message"] or "queued in Airflow: waiting for a free slot or an earlier run"
    return facts


def latest_run_id(s3: S3Client, runs_uri: str) -> str | None:
    """The run whose round-0 manifest was written last: `plan` writes it when a run starts."""
    root = S3Uri.parse(runs_uri)
    newest: tuple[float, str] | None = None
    for run_prefix in _subfolders(s3, root.bucket, root.dir_prefix):
        found = s3.list_objects_v2(Bucket=root.bucket, Prefix=run_prefix + "round-000/manifest.jsonl", MaxKeys=1)
        for obj in found.get("Contents", ()):
            stamp = obj["LastModified"].timestamp()
            if newest is None or stamp > newest[0]:
                newest = (stamp, run_prefix[len(root.dir_prefix):].rstrip("/"))
    return newest[1] if newest else None


def default_runs_uri() -> str:
    """Where the DAG puts run artefacts when its `runs_uri` Param is empty: the same defaults."""
    return os.environ.get(ENV_RUNS_URI) or runs_uri_for(os.environ.get(ENV_OUTPUT_URI) or DEFAULT_OUTPUT_URI)



# --- S3 ---------------------------------------------------------------------------------------


def _subfolders(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    folders: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        folders.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
    return folders


def _round_numbers(s3: S3Client, layout: RunLayout) -> list[int]:
    found = (_ROUND_DIR.search(p) for p in _subfolders(s3, layout.run.bucket, layout.run.dir_prefix))
    return sorted(int(m.group(1)) for m in found if m)


def _failures(s3: S3Client, layout: RunLayout, rounds: int) -> dict[str, Any]:
    """Failures still standing, by error class, with the offending keys (a key converted in a later
    round no longer counts)."""
    standing = failures_of_run(s3, layout, rounds, limit=sys.maxsize)
    counts = Counter(f.error_class for f in standing)
    classes = []
    for name, count in counts.most_common():
        known = ERROR_CLASSES.get(name)
        keys = [f"s3://{f.bucket}/{f.key}" for f in standing if f.error_class == name]
        messages = Counter(f.message for f in standing if f.error_class == name)
        classes.append({"error_class": name, "count": count, "retryable": bool(known and known.retryable),
                        "meaning": known.meaning if known else "", "keys": keys[:KEYS_PER_CLASS],
                        "message": messages.most_common(1)[0][0]})
    return {"total": len(standing), "by_class": classes}


# --- rounds and shards ------------------------------------------------------------------------


def _round_view(s3: S3Client, layout: RunLayout, rnd: int, records: list[ShardProgress], jobs: list[dict[str, Any]],
                now: float, table: ShardTable | None) -> dict[str, Any]:
    """A round: its summary once reduced, its array job, the aggregate of its shards' progress, and
    its per-shard rows when `table` asks for them."""
    summary = s3io.get_json(s3, layout.run.bucket, layout.summary_key(rnd), RoundSummary)
    job = jobs[-1] if jobs else None
    child_status = {int(c["index"]): c["status"] for c in (job or {}).get("child_list", [])}
    size = int(job["children"]) if job else 0
    view = {
        "round": rnd,
        "rerun": rnd > 0,
        "reduced": summary is not None,
        "summary": summary.to_dict() if summary else None,
        "job": {k: v for k, v in job.items() if k != "child_list"} if job else None,
        "progress": round_progress(rnd, records, child_status, size, now),
    }
    if table is not None and table.round in (None, rnd):
        view["shard_table"] = _shard_table(records, child_status, table)
    return view


def round_progress(rnd: int, records: list[ShardProgress], child_status: dict[int, str], array_size: int,
                   now: float) -> dict[str, Any]:
    """progress.summarize's aggregate with what only Batch knows: a running record whose child has
    ended is `lost` (SIGKILL, OOM: reduce reruns its PDFs), and a child with no record yet is
    `pending` (still active) or `no-record`."""
    lost = [r.shard for r in records if r.state == ShardState.RUNNING and child_status.get(r.shard) in batch_api.TERMINAL]
    recorded = {r.shard for r in records}
    waiting = Counter("pending" if status in batch_api.ACTIVE else "no-record"
                      for index, status in child_status.items() if index not in recorded)
    view = progress_io.summarize(rnd, records, array_size, now).to_dict()
    by_state = Counter(view["by_state"])
    by_state.update(waiting)
    if lost:
        by_state.update({"lost": len(lost), "running": -len(lost)})
        view["slowest"] = [s for s in view["slowest"] if s["shard"] not in lost]
        view["stale"] = [i for i in view["stale"] if i not in lost]
    view.update(by_state={state: n for state, n in sorted(by_state.items()) if n > 0}, lost=lost,
                shards=view["shards"] + sum(waiting.values()))
    return dict(view)


def _shard_table(records: list[ShardProgress], child_status: dict[int, str], table: ShardTable) -> dict[str, Any]:
    """A page of per-shard rows in shard order (Batch children with no progress record yet included)."""
    by_index = {r.shard: r for r in records}
    indexes = sorted(by_index.keys() | child_status.keys())
    end = len(indexes) if table.limit is None else table.offset + table.limit
    rows = [_shard_view(by_index[i], child_status.get(i)) if i in by_index else _pending_shard(i, child_status[i])
            for i in indexes[table.offset:end]]
    return {"offset": table.offset, "limit": table.limit, "total": len(indexes), "rows": rows}


def _shard_view(p: ShardProgress, batch_status: str | None) -> dict[str, Any]:
    state: str = p.state
    if state == ShardState.RUNNING and batch_status in batch_api.TERMINAL:
        state = "lost"  # the child ended without its final record (SIGKILL, OOM): reduce reruns its PDFs
    done = p.converted + p.skipped + p.failed
    rate = p.pages / p.seconds * 3600 if p.seconds > 0 else 0.0
    return {"shard": p.shard, "attempt": p.attempt, "state": state, "batch_status": batch_status,
            "assigned": p.assigned, "done": done, "converted": p.converted, "skipped": p.skipped, "failed": p.failed,
            "pages": p.pages, "seconds": p.seconds,
            "updated_at": p.updated_at, "pages_per_hour": round(rate, 1)}


def _pending_shard(index: int, batch_status: str) -> dict[str, Any]:
    return {"shard": index, "attempt": 0, "state": "pending" if batch_status in batch_api.ACTIVE else "no-record",
            "batch_status": batch_status, "assigned": None, "done": 0, "converted": 0, "skipped": 0, "failed": 0,
            "pages": 0, "seconds": 0.0, "updated_at": None, "pages_per_hour": 0.0}


def _totals(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Round 0's shards hold the run's PDFs; reruns redo some of them, so their counts are not added
    to `assigned` but their conversions are."""
    first = rounds[0]["progress"] if rounds else None
    every = [r["progress"] for r in rounds]
    by_state: Counter[str] = Counter()
    for p in every:
        by_state.update(p["by_state"])
    return {
        "assigned": first["assigned"] if first else 0,
        "converted": sum(p["converted"] for p in every),
        "skipped": first["skipped"] if first else 0,
        "pages": sum(p["pages"] for p in every),
        "shards": sum(p["shards"] for p in every),
        "shards_by_state": dict(sorted(by_state.items())),
        "rounds": len(rounds),
    }


# --- Batch and spend --------------------------------------------------------------------------


def _run_jobs(batch: BatchClient, job_queue: str, run_id: str) -> dict[int, list[dict[str, Any]]]:
    """This run's array jobs by round (oldest first), each with its children described."""
    prefix = batch_job_name_prefix(run_id)
    found: dict[int, list[dict[str, Any]]] = {}
    paginator = batch.get_paginator("list_jobs")
    pages = paginator.paginate(jobQueue=job_queue, filters=[{"name": "JOB_NAME", "values": [f"{prefix}-r*"]}])
    for summary in (j for page in pages for j in page["jobSummaryList"]):
        match = _JOB_ROUND.search(summary["jobName"])
        if ":" in summary["jobId"] or not match or not summary["jobName"].startswith(prefix):
            continue
        kids = batch_api.children(batch, summary["jobId"])
        found.setdefault(int(match.group(1)), []).append({
            "job_id": summary["jobId"], "name": summary["jobName"], "status": summary["status"],
            "created_at": summary.get("createdAt", 0) / 1000, "children": len(kids),
            "children_by_status": dict(Counter(k["status"] for k in kids)),
            "instance_seconds": round(sum(batch_api.attempt_seconds(k) for k in kids), 3),
            "child_list": [{"index": _child_index(k), "status": k["status"],
                            "intervals": _attempt_intervals(k)} for k in kids],
        })
    for jobs in found.values():
        jobs.sort(key=lambda j: j["created_at"])
    return found


def _child_index(job: dict[str, Any]) -> int:
    """Array children are '<parent>:<index>' (describe_jobs' arrayProperties.index is not always there)."""
    return int(job["jobId"].rsplit(":", 1)[1]) if ":" in job["jobId"] else 0


def _attempt_intervals(job: dict[str, Any]) -> list[tuple[float, float | None]]:
    """batch.attempt_intervals in epoch seconds; stop is None for the attempt running now."""
    return [(start / 1000, stop / 1000 if stop is not None else None) for start, stop in batch_api.attempt_intervals(job)]


def _price(explicit: float | None, report: RunReport | None) -> tuple[float, str]:
    if explicit:
        return explicit, "run configuration"
    if report and report.price_per_hour_usd:
        return report.price_per_hour_usd, "run report"
    return DEFAULT_PRICE_PER_HOUR, "fallback price (the run's own is not known yet)"


def _spend(jobs: dict[int, list[dict[str, Any]]], price: float, source: str, budget: float | None, now: float) -> dict[str, Any]:
    spans = [(start, stop if stop is not None else now) for js in jobs.values() for j in js
             for child in j["child_list"] for start, stop in child["intervals"]]
    t, seconds = cumulative_busy_seconds(spans)
    spent_s = sum(j["instance_seconds"] for js in jobs.values() for j in js)
    spent = spent_s / 3600 * price
    return {
        "price_per_hour_usd": price,
        "price_source": source,
        "budget_usd": budget,
        "instance_seconds": round(spent_s, 3),
        "spent_usd": round(spent, 6),
        "budget_fraction": round(spent / budget, 4) if budget else None,
        "series": {"t": t, "usd": [round(s / 3600 * price, 6) for s in seconds]},
    }


def cumulative_busy_seconds(spans: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Instance seconds used up to each time: the sum of every span's part before it.

    Between span boundaries the number of busy children is constant, so sampling at the boundaries
    gives the exact curve (thinned evenly when there are too many)."""
    spans = [(a, b) for a, b in spans if b > a]
    if not spans:
        return [], []
    times = _thin(sorted({x for span in spans for x in span}))
    return times, [round(sum(min(max(t - a, 0.0), b - a) for a, b in spans), 3) for t in times]


def throughput_series(records: Sequence[ShardProgress], now: float | None) -> dict[str, list[float]]:
    """PDFs and pages done over time, and pages per minute, from each shard's latest record.

    A shard's done work is spread evenly over [started_at, updated_at] (earlier records are
    overwritten in S3); a running shard's last point is carried to `now`.
    """
    spans = [(r.started_at, r.updated_at, r.converted + r.skipped + r.failed, r.pages)
             for r in records if r.started_at and r.updated_at >= r.started_at]
    if not spans:
        return {"t": [], "pdfs": [], "pages": [], "pages_per_min": []}
    edges = {x for a, b, _, _ in spans for x in (a, b)} | ({now} if now else set())
    times = _thin(sorted(edges))
    pdfs = [round(x, 2) for x in _spread([(a, b, n) for a, b, n, _ in spans], times)]
    pages = [round(x, 2) for x in _spread([(a, b, n) for a, b, _, n in spans], times)]
    rate = [0.0] + [round((pages[i] - pages[i - 1]) / (times[i] - times[i - 1]) * 60, 2) if times[i] > times[i - 1] else 0.0
                    for i in range(1, len(times))]
    return {"t": times, "pdfs": pdfs, "pages": pages, "pages_per_min": rate}


def _spread(spans: Sequence[tuple[float, float, int]], times: Sequence[float]) -> list[float]:
    """Σ n × (share of [start, end] before t) at each of the ascending `times`, in one sweep
    (10,000 shards × 240 points would otherwise be millions of terms per refresh).

    An open span adds n × (t - start) / (end - start): its slope and intercept are kept as running
    sums; a span whose end has passed adds n in full (one with end == start counts from its end).
    Times are taken relative to the first one, so the sums stay exact at epoch scale."""
    origin = times[0] if times else 0.0
    opening = sorted((a - origin, b - origin, n) for a, b, n in spans if b > a)
    closing = sorted((b - origin, a - origin, n) for a, b, n in spans)
    slope = intercept = full = 0.0
    i = j = 0
    out: list[float] = []
    for t in (x - origin for x in times):
        while i < len(opening) and opening[i][0] < t:
            a, b, n = opening[i]
            slope, intercept, i = slope + n / (b - a), intercept + n * a / (b - a), i + 1
        while j < len(closing) and closing[j][0] <= t:
            b, a, n = closing[j]
            full, j = full + n, j + 1
            if b > a:
                slope, intercept = slope - n / (b - a), intercept - n * a / (b - a)
        out.append(full + slope * t - intercept)
    return out


def _thin(times: list[float]) -> list[float]:
    if len(times) <= MAX_SERIES_POINTS:
        return times
    first, last = times[0], times[-1]
    step = (last - first) / (MAX_SERIES_POINTS - 1)
    return [first + i * step for i in range(MAX_SERIES_POINTS)]
