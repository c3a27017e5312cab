"""What a pdf2md run is doing, told from what the run writes to S3 and from the Batch API alone.

One function, `run_status`, assembles the facts; the status page (pdf2md/ui, mounted into Airflow by
plugins/pdf2md_plugin.py) serves them as JSON and `pdf2md status` (pdf2md.cli, drawn by
pdf2md.status_text) prints them, so both always agree. Nothing here parses arguments or draws.
Only Airflow knows that a run failed before it wrote anything, and why a task failed:
`with_airflow_outcome` adds that where Airflow is at hand (pdf2md.ui.airflow_runs reads it); without
it the CLI still works anywhere with S3 and Batch access.

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
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pdf2md import batch as batch_api
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
_FETCH_THREADS = 16


# --- the facts --------------------------------------------------------------------------------


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
) -> dict[str, Any]:
    """Everything the page and the CLI show about one run, as plain JSON-able data.

    The budget and price are known to S3 only once the report is written; callers that know them
    earlier (the page reads them from the run's configuration) pass them in.
    """
    now = time.time() if now is None else now
    layout = RunLayout.for_run(runs_uri, run_id)
    report = s3io.get_json(s3, layout.run.bucket, layout.report_key, RunReport)
    rounds = _round_numbers(s3, layout)
    jobs = _run_jobs(batch, job_queue, run_id)
    progress = _progress_records(s3, layout, rounds)
    price, price_source = _price(price_per_hour_usd, report)
    budget = budget_usd if budget_usd is not None else (report.budget_usd if report else None)
    round_views = [_round_view(s3, layout, rnd, progress.get(rnd, []), jobs.get(rnd, [])) for rnd in rounds]
    live = report is None and (any(s["state"] in ("running", "pending") for r in round_views for s in r["shards"])
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


def _progress_records(s3: S3Client, layout: RunLayout, rounds: Iterable[int]) -> dict[int, list[ShardProgress]]:
    """Every shard's latest progress record, fetched in parallel (one GET per shard)."""
    bucket = layout.run.bucket
    keys = [(rnd, o.key) for rnd in rounds for o in s3io.iter_objects(s3, S3Uri(bucket, layout.progress_prefix(rnd)))]
    with ThreadPoolExecutor(_FETCH_THREADS) as pool:
        records = list(pool.map(lambda item: s3io.get_json(s3, bucket, item[1], ShardProgress), keys))
    by_round: dict[int, list[ShardProgress]] = {}
    for (rnd, _key), record in zip(keys, records, strict=True):
        if record is not None:
            by_round.setdefault(rnd, []).append(record)
    return by_round


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


def _round_view(s3: S3Client, layout: RunLayout, rnd: int, records: list[ShardProgress], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """A round: its summary once reduced, its array job, and a row per shard (Batch children with no
    progress record yet are `pending`)."""
    summary = s3io.get_json(s3, layout.run.bucket, layout.summary_key(rnd), RoundSummary)
    job = jobs[-1] if jobs else None
    child_status = {int(c["index"]): c["status"] for c in (job or {}).get("child_list", [])}
    shards = {r.shard: _shard_view(r, child_status.get(r.shard)) for r in records}
    for index, status in child_status.items():
        shards.setdefault(index, _pending_shard(index, status))
    return {
        "round": rnd,
        "rerun": rnd > 0,
        "reduced": summary is not None,
        "summary": summary.to_dict() if summary else None,
        "job": {k: v for k, v in job.items() if k != "child_list"} if job else None,
        "shards": [shards[i] for i in sorted(shards)],
    }


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
    first = rounds[0]["shards"] if rounds else []
    every = [s for r in rounds for s in r["shards"]]
    return {
        "assigned": sum(s["assigned"] or 0 for s in first),
        "converted": sum(s["converted"] for s in every),
        "skipped": sum(s["skipped"] for s in first),
        "pages": sum(s["pages"] for s in every),
        "shards": len(every),
        "shards_by_state": dict(Counter(s["state"] for s in every)),
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
    """(start, stop) of each attempt in epoch seconds; stop is None for the attempt running now.
    The same intervals batch.attempt_seconds adds up."""
    spans: list[tuple[float, float | None]] = [
        (a["startedAt"] / 1000, a["stoppedAt"] / 1000) for a in job.get("attempts") or ()
        if a.get("startedAt") and a.get("stoppedAt") and a["stoppedAt"] >= a["startedAt"]]
    if job.get("status") == "RUNNING" and job.get("startedAt"):
        spans.append((job["startedAt"] / 1000, None))
    return spans


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
    pdfs = [round(sum(n * _fraction(t, a, b) for a, b, n, _ in spans), 2) for t in times]
    pages = [round(sum(n * _fraction(t, a, b) for a, b, _, n in spans), 2) for t in times]
    rate = [0.0] + [round((pages[i] - pages[i - 1]) / (times[i] - times[i - 1]) * 60, 2) if times[i] > times[i - 1] else 0.0
                    for i in range(1, len(times))]
    return {"t": times, "pdfs": pdfs, "pages": pages, "pages_per_min": rate}


def _fraction(t: float, start: float, end: float) -> float:
    if end <= start:
        return 1.0 if t >= end else 0.0
    return min(max((t - start) / (end - start), 0.0), 1.0)


def _thin(times: list[float]) -> list[float]:
    if len(times) <= MAX_SERIES_POINTS:
        return times
    first, last = times[0], times[-1]
    step = (last - first) / (MAX_SERIES_POINTS - 1)
    return [first + i * step for i in range(MAX_SERIES_POINTS)]
