"""Every AWS Batch call the project makes outside the provider's operator: children, spend, stop."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from pdf2md.s3 import RETRY_CONFIG

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient

log = logging.getLogger(__name__)

TERMINAL = ("SUCCEEDED", "FAILED")
ACTIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
_DESCRIBE_CHUNK = 100


def client() -> BatchClient:
    return boto3.client("batch", config=RETRY_CONFIG)


def describe(batch: BatchClient, job_ids: list[str]) -> Iterator[dict[str, Any]]:
    """describe_jobs in chunks of 100 (the API's limit), each job copied to the plain dict that
    status.py's readers take (a JobDetailTypeDef is not one)."""
    for start in range(0, len(job_ids), _DESCRIBE_CHUNK):
        yield from (dict(job) for job in batch.describe_jobs(jobs=job_ids[start : start + _DESCRIBE_CHUNK])["jobs"])


def children(batch: BatchClient, parent_id: str) -> list[dict[str, Any]]:
    """Every child of an array job, described (attempts included)."""
    return _children_of(batch, _parent(batch, parent_id))


def _parent(batch: BatchClient, parent_id: str) -> dict[str, Any]:
    parent = next(describe(batch, [parent_id]), None)
    if parent is None:
        raise LookupError(f"no Batch job {parent_id}")
    return parent


def _children_of(batch: BatchClient, parent: dict[str, Any]) -> list[dict[str, Any]]:
    size = int(parent.get("arrayProperties", {}).get("size") or 0)
    ids = [f"{parent['jobId']}:{i}" for i in range(size)] if size else [parent["jobId"]]
    return list(describe(batch, ids))


def attempt_intervals(job: dict[str, Any], now_ms: int | None = None) -> list[tuple[int, int | None]]:
    """(start, stop) in epoch milliseconds of each attempt that used an instance: the finished ones,
    then the one running now, which stops at `now_ms` when given and is open (None) otherwise.

    The one definition of a job's instance time: spend (attempt_seconds) and the status page's
    spend curve both read it."""
    spans: list[tuple[int, int | None]] = []
    for attempt in job.get("attempts") or ():
        start, stop = attempt.get("startedAt"), attempt.get("stoppedAt")
        if start and stop and stop >= start:
            spans.append((int(start), int(stop)))
    if job.get("status") == "RUNNING" and job.get("startedAt"):
        start = int(job["startedAt"])
        spans.append((start, max(start, now_ms) if now_ms is not None else None))
    return spans


def attempt_seconds(job: dict[str, Any], now_ms: int | None = None) -> float:
    """Instance time a job used: its finished attempts plus the one running now."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    return sum((stop if stop is not None else now_ms) - start for start, stop in attempt_intervals(job, now_ms)) / 1000


@dataclass(frozen=True)
class JobUsage:
    status: str
    children: int
    failed: int
    succeeded: int
    seconds: float


def usage(batch: BatchClient, parent_id: str) -> JobUsage:
    """The parent's status and the instance seconds its children have used so far."""
    parent = _parent(batch, parent_id)
    kids = _children_of(batch, parent)
    return JobUsage(
        status=parent["status"],
        children=len(kids),
        failed=sum(k["status"] == "FAILED" for k in kids),
        succeeded=sum(k["status"] == "SUCCEEDED" for k in kids),
        seconds=sum(attempt_seconds(k) for k in kids),
    )


def terminate(batch: BatchClient, job_ids: list[str], reason: str) -> list[str]:
    """Terminate the jobs still active (an array parent takes its children with it)."""
    stopped = []
    for job in describe(batch, job_ids):
        if job["status"] in ACTIVE:
            batch.terminate_job(jobId=job["jobId"], reason=reason)
            stopped.append(job["jobId"])
    if stopped:
        log.warning("terminated %d Batch job(s): %s", len(stopped), reason)
    return stopped
