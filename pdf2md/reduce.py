"""After a round: what was converted, what failed for good, and what goes into the next round.

Shard by shard, in parallel: its manifest, every attempt's results and the latest attempt's failure records,
each record trusted only for a PDF of that manifest (a child cannot add PDFs to the next round), and only
for a shard whose child never wrote its records (SIGKILL, OOM) or whose records lost a line, one HEAD per
PDF not accounted for. A line that is no record is one fault, counted in the summary, never a crash.
Nothing lists the outputs, and memory holds a few shards at a time, whatever the size.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
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
    is_output_current,
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
    faults: int = 0


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
            summary.record_faults += outcome.faults
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
    log.info("round %d: %d converted, %d skipped, %d failed for good, %d retryable%s%s", rnd, summary.converted,
             summary.skipped, sum(permanent.values()), sum(retryable.values()),
             f" → round {rnd + 1}" if summary.rerun_entries else "",
             f"; {summary.record_faults} unusable record(s) ignored" if summary.record_faults else "")
    return summary


@dataclass
class _Faults:
    """A shard's records that cannot count: lines that are no record, records of PDFs not in its manifest.
    Each is logged and counted, never raised: one bad line must not cost the round its summary."""

    where: str
    count: int = 0

    def note(self, message: str) -> None:
        self.count += 1
        log.warning("%s: %s (ignored)", self.where, message)


@dataclass
class _ShardReducer:
    s3: S3Client
    layout: RunLayout
    plan: Plan
    output: S3Uri
    run_id: str

    def reduce(self, shard: int, files: ShardFiles) -> ShardOutcome:
        """The shard's outcome from its records, trusted only for the PDFs of its own manifest; a PDF its
        records do not account for (no records at all, or a line lost) is checked with one HEAD."""
        bucket = self.layout.run.bucket
        outcome = ShardOutcome()
        faults = _Faults(f"round {self.plan.round} shard {shard}")
        entries = {e.uri: e for e in self._manifest(shard)}
        converted = {uri: m for uri, m in _converted(self.s3, bucket, files.results, faults.note).items()
                     if _in_manifest(uri, entries, faults, "result")}
        outcome.converted = len(converted)
        outcome.pages = sum(m.pages for m in converted.values())
        outcome.seconds = sum(m.seconds for m in converted.values())
        outcome.figures = sum(m.figures or 0 for m in converted.values())
        failures: dict[str, FailureRecord] = {}
        for f in _failures(self.s3, bucket, files.failures, faults.note) if files.failures else []:
            uri = f"s3://{f.bucket}/{f.key}"
            if _in_manifest(uri, entries, faults, "failure record") and uri not in converted:
                # rebuilt from the manifest's entry: a child's record names a class, never what reruns
                failures[uri] = FailureRecord.of(entries[uri], f.error_class, f.message, shard=shard, round=self.plan.round,
                                                 run_id=self.run_id)
        standing = list(failures.values())
        if files.failures is not None and not faults.count:
            outcome.skipped = len(entries) - outcome.converted - len(failures)
        else:
            standing += self._unreported([e for uri, e in entries.items() if uri not in converted and uri not in failures], outcome)
        for failure in standing:
            if failure.retryable:
                outcome.retry.append(failure)
            else:
                outcome.permanent[failure.error_class] += 1
        outcome.faults = faults.count
        return outcome

    def _manifest(self, shard: int) -> list[ManifestEntry]:
        manifest = S3Uri.parse(self.plan.manifest_uri)
        body = s3io.get_bytes(self.s3, manifest.bucket, shard_manifest_key(manifest.prefix, shard, self.plan.array_size))
        return list(load_jsonl(ManifestEntry, body.splitlines()))

    def _unreported(self, entries: list[ManifestEntry], outcome: ShardOutcome) -> Iterator[FailureRecord]:
        """PDFs no record accounts for (the child never wrote them: SIGKILL, OOM; or a line of them was lost):
        each is done if its output is current (one HEAD), else lost, and worth another try."""
        for entry in entries:
            head = s3io.head(self.s3, self.output.bucket, output_key(self.output, entry.rel))
            if head is not None and is_output_current(head["LastModified"].timestamp(), head.get("Metadata", {}).get("source-etag"), entry):
                outcome.skipped += 1
            else:
                yield lost(entry, self.plan.round, self.run_id)


def _in_manifest(uri: str, entries: dict[str, ManifestEntry], faults: _Faults, what: str) -> bool:
    """Whether a record's PDF is one of the shard's: a child cannot add PDFs to a round, or to the next one."""
    if uri in entries:
        return True
    faults.note(f"a {what} of {uri}, which is not in the shard's manifest")
    return False


def lost(entry: ManifestEntry, rnd: int, run_id: str) -> FailureRecord:
    """No output and no record: the child died without a word (SIGKILL, OOM). Worth another try."""
    return FailureRecord.of(entry, ErrorKind.INTERRUPTED, LOST_MESSAGE, shard=-1, round=rnd, run_id=run_id)


def _converted(s3: S3Client, bucket: str, keys: list[str], on_error: Callable[[str], None]) -> dict[str, OutputMeta]:
    """Every attempt's results of a shard, by source URI (a line that is no record goes to `on_error`)."""
    return {m.source_uri: m for key in keys for m in s3io.read_jsonl(s3, bucket, key, OutputMeta, on_error)}


def _failures(s3: S3Client, bucket: str, latest: tuple[int, str, int], on_error: Callable[[str], None]) -> list[FailureRecord]:
    """Per shard only its last attempt's file counts: a later attempt redid everything not done."""
    _attempt, key, size = latest
    return list(s3io.read_jsonl(s3, bucket, key, FailureRecord, on_error)) if size else []


def _log_bad_line(key: str) -> Callable[[str], None]:
    return lambda message: log.warning("%s: %s (ignored)", key, message)


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
        planner = (list(s3io.read_jsonl(s3, bucket, files.planner_failures, FailureRecord, _log_bad_line(files.planner_failures)))
                   if files.planner_failures else [])
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
    failures = _failures(s3, bucket, files.failures, _log_bad_line(files.failures[1])) if files.failures else []
    converted = _converted(s3, bucket, files.results, _log_bad_line("results")) if failures or rerun_round else {}
    return [f for f in failures if f"s3://{f.bucket}/{f.key}" not in converted], set(converted) if rerun_round else set()
