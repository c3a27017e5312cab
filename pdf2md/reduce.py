"""After a round: what was converted, what failed for good, and what goes into the next round.

Shard by shard, in parallel: every attempt's results, the latest attempt's failure records, and only for
a shard whose child never wrote its records (SIGKILL, OOM) its manifest and one HEAD per PDF not yet
accounted for. Nothing lists the outputs, and memory holds a few shards at a time, whatever the size.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from pdf2md import s3 as s3io
from pdf2md.contracts import (
    ErrorKind,
    FailureRecord,
    ManifestEntry,
    OutputMeta,
    Plan,
    RoundSummary,
    RunLayout,
    S3Uri,
    is_up_to_date,
    load_jsonl,
    output_key,
    shard_manifest_key,
)
from pdf2md.plan import write_manifest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

READ_THREADS = 32
"""Shards reduced at once (each is a few GETs)."""
_SHARD_FILE = re.compile(r"shard-(\d+)\.attempt-(\d+)\.jsonl$")
LOST_MESSAGE = "no output and no failure record: the child stopped without reporting"


@dataclass
class ShardFiles:
    """A shard's record files in one round, from one listing of the round's prefixes."""

    results: list[str] = field(default_factory=list)
    failures: tuple[int, str, int] | None = None
    """The latest attempt's failure file: (attempt, key, size)."""


@dataclass
class RoundFiles:
    shards: dict[int, ShardFiles]
    planner_failures: str | None
    """round-000/failures/planner.jsonl: the key collisions the planner refused."""


def round_files(s3: S3Client, layout: RunLayout, rnd: int) -> RoundFiles:
    """Every shard's results and latest failures file of a round (two listings, 10 pages at 10,000 shards)."""
    bucket = layout.run.bucket
    shards: dict[int, ShardFiles] = {}
    planner = None
    for obj in s3io.iter_objects(s3, S3Uri(bucket, layout.results_prefix(rnd))):
        if m := _SHARD_FILE.search(obj.key):
            shards.setdefault(int(m.group(1)), ShardFiles()).results.append(obj.key)
    for obj in s3io.iter_objects(s3, S3Uri(bucket, layout.failures_prefix(rnd))):
        if m := _SHARD_FILE.search(obj.key):
            files = shards.setdefault(int(m.group(1)), ShardFiles())
            attempt = int(m.group(2))
            if files.failures is None or attempt >= files.failures[0]:
                files.failures = (attempt, obj.key, obj.size)
        elif obj.key.endswith("/planner.jsonl"):
            planner = obj.key
    return RoundFiles(shards, planner)


@dataclass
class ShardOutcome:
    converted: int = 0
    skipped: int = 0
    pages: int = 0
    seconds: float = 0.0
    figures: int = 0
    permanent: Counter[str] = field(default_factory=Counter)
    retry: list[FailureRecord] = field(default_factory=list)


def reduce_round(s3: S3Client, layout: RunLayout, rnd: int, output_uri: str, array_size: int, rerun: bool, *, run_id: str = "") -> RoundSummary:
    """Split the round's PDFs into converted, skipped, permanently failed and retryable; write the rerun manifest.

    `run_id` names the run in the records of PDFs lost without a word (default: the run's folder name).
    """
    bucket = layout.run.bucket
    plan = s3io.get_json(s3, bucket, layout.plan_key(rnd), Plan)
    if plan is None:
        raise ValueError(f"round {rnd} has no plan at {layout.uri(layout.plan_key(rnd))}")
    files = round_files(s3, layout, rnd)
    reducer = _ShardReducer(s3, layout, plan, S3Uri.parse(output_uri), run_id or layout.run.prefix.rstrip("/").rsplit("/", 1)[-1])
    summary = RoundSummary(round=rnd, planned=plan.entries)
    permanent: Counter[str] = Counter()
    retryable: Counter[str] = Counter()
    with tempfile.TemporaryFile() as retries, ThreadPoolExecutor(READ_THREADS) as pool:
        for outcome in pool.map(lambda shard: reducer.reduce(shard, files.shards.get(shard, ShardFiles())), range(plan.array_size)):
            summary.converted += outcome.converted
            summary.skipped += outcome.skipped
            summary.pages += outcome.pages
            summary.converter_seconds += outcome.seconds
            summary.figures += outcome.figures
            permanent.update(outcome.permanent)
            for failure in outcome.retry:
                retryable[failure.error_class] += 1
                retries.write((failure.to_manifest_entry().to_json() + "\n").encode())
        summary.permanent_by_class = {str(k): v for k, v in permanent.items()}
        summary.retryable_by_class = {str(k): v for k, v in retryable.items()}
        if retryable and rerun:
            retries.seek(0)
            rerun_plan = write_manifest(s3, layout, load_jsonl(ManifestEntry, retries), array_size, rnd + 1)
            summary.rerun_manifest_uri, summary.rerun_array_size, summary.rerun_entries = (
                rerun_plan.manifest_uri, rerun_plan.array_size, rerun_plan.entries)
    s3io.put_json(s3, bucket, layout.summary_key(rnd), summary)
    log.info("round %d: %d converted, %d skipped, %d failed for good, %d retryable%s", rnd, summary.converted,
             summary.skipped, sum(permanent.values()), sum(retryable.values()),
             f" → round {rnd + 1}" if summary.rerun_entries else "")
    return summary


@dataclass
class _ShardReducer:
    s3: S3Client
    layout: RunLayout
    plan: Plan
    output: S3Uri
    run_id: str

    def reduce(self, shard: int, files: ShardFiles) -> ShardOutcome:
        bucket = self.layout.run.bucket
        outcome = ShardOutcome()
        converted = _converted(self.s3, bucket, files.results)
        outcome.converted = len(converted)
        outcome.pages = sum(m.pages for m in converted.values())
        outcome.seconds = sum(m.seconds for m in converted.values())
        outcome.figures = sum(m.figures or 0 for m in converted.values())
        if files.failures is not None:
            failures = [f for f in _failures(self.s3, bucket, files.failures) if f"s3://{f.bucket}/{f.key}" not in converted]
            outcome.skipped = self.plan.shard_entries(shard) - outcome.converted - len(failures)
        else:
            failures = list(self._unreported(shard, converted, outcome))
        for failure in failures:
            if failure.retryable:
                outcome.retry.append(failure)
            else:
                outcome.permanent[failure.error_class] += 1
        return outcome

    def _unreported(self, shard: int, converted: dict[str, OutputMeta], outcome: ShardOutcome) -> Iterator[FailureRecord]:
        """The child never wrote its records: each PDF without a result is done if its output is up to
        date (one HEAD), else lost, and worth another try."""
        manifest = S3Uri.parse(self.plan.manifest_uri)
        body = s3io.get_bytes(self.s3, manifest.bucket, shard_manifest_key(manifest.prefix, shard, self.plan.array_size))
        for entry in load_jsonl(ManifestEntry, body.splitlines()):
            if entry.uri in converted:
                continue
            head = s3io.head(self.s3, self.output.bucket, output_key(self.output, entry.rel))
            if head is not None and is_up_to_date(head["LastModified"].timestamp(), entry.mtime):
                outcome.skipped += 1
            else:
                yield lost(entry, self.plan.round, self.run_id)


def lost(entry: ManifestEntry, rnd: int, run_id: str) -> FailureRecord:
    """No output and no record: the child died without a word (SIGKILL, OOM). Worth another try."""
    return FailureRecord.of(entry, ErrorKind.INTERRUPTED, LOST_MESSAGE, shard=-1, round=rnd, run_id=run_id)


def _converted(s3: S3Client, bucket: str, keys: list[str]) -> dict[str, OutputMeta]:
    """Every attempt's results of a shard, by source URI."""
    return {m.source_uri: m for key in keys for m in s3io.read_jsonl(s3, bucket, key, OutputMeta)}


def _failures(s3: S3Client, bucket: str, latest: tuple[int, str, int]) -> list[FailureRecord]:
    """Per shard only its last attempt's file counts: a later attempt redid everything not done."""
    _attempt, key, size = latest
    return list(s3io.read_jsonl(s3, bucket, key, FailureRecord)) if size else []


def failures_of_run(s3: S3Client, layout: RunLayout, rounds: int, limit: int = 1000) -> list[FailureRecord]:
    """The failures still standing at the end: each PDF's record from the last round it appeared in.

    Rounds are read from the last back: a PDF a later round converted or failed again is settled there.
    Shards with an empty failure file cost no GET.
    """
    bucket = layout.run.bucket
    standing: dict[str, FailureRecord] = {}
    settled: set[str] = set()
    for rnd in reversed(range(rounds)):
        files = round_files(s3, layout, rnd)
        with ThreadPoolExecutor(READ_THREADS) as pool:
            rerun_round = [rnd > 0] * len(files.shards)
            per_shard = list(pool.map(partial(_standing_in_shard, s3, bucket), files.shards.values(), rerun_round))
        planner = list(s3io.read_jsonl(s3, bucket, files.planner_failures, FailureRecord)) if files.planner_failures else []
        seen: set[str] = set()
        for failures, converted in [*per_shard, (planner, set())]:
            seen |= converted
            for f in failures:
                uri = f"s3://{f.bucket}/{f.key}"
                seen.add(uri)
                if uri not in settled:
                    standing.setdefault(uri, f)
        settled |= seen
    return sorted(standing.values(), key=lambda f: (f.error_class, f.key))[:limit]


def _standing_in_shard(s3: S3Client, bucket: str, files: ShardFiles, rerun_round: bool) -> tuple[list[FailureRecord], set[str]]:
    """A shard's failures that no attempt converted; and, in a rerun round, the PDFs it converted (which
    settle their earlier rounds' failures; round 0's results are never needed)."""
    failures = _failures(s3, bucket, files.failures) if files.failures else []
    converted = _converted(s3, bucket, files.results) if failures or rerun_round else {}
    return [f for f in failures if f"s3://{f.bucket}/{f.key}" not in converted], set(converted) if rerun_round else set()
