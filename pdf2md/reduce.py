"""After a round: what was converted, what failed for good, and what goes into the next round."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from pdf2md import s3 as s3io
from pdf2md.contracts import (
    FailureRecord,
    ManifestEntry,
    OutputMeta,
    RoundSummary,
    RunLayout,
    S3Uri,
    is_retryable,
    is_up_to_date,
    markdown_rel,
)
from pdf2md.plan import Plan, output_index, write_manifest

log = logging.getLogger(__name__)


def reduce_round(s3: Any, layout: RunLayout, rnd: int, output_uri: str, array_size: int, rerun: bool) -> RoundSummary:
    """Split the round's manifest into converted, permanently failed and retryable; write the rerun manifest."""
    bucket = layout.run.bucket
    entries = list(s3io.read_jsonl(s3, bucket, layout.manifest_key(rnd), ManifestEntry))
    done = output_index(s3, S3Uri.parse(output_uri)).markdown
    results = {m.source_uri: m for m in _all_records(s3, bucket, layout.results_prefix(rnd), OutputMeta)}
    failures = _latest_failures(s3, bucket, layout.failures_prefix(rnd))
    summary = RoundSummary(round=rnd, planned=len(entries))
    permanent: Counter[str] = Counter()
    retry: list[FailureRecord] = []
    for entry in entries:
        if is_up_to_date(done.get(markdown_rel(entry.rel)), entry.mtime):
            meta = results.get(entry.uri)
            if meta is None:
                summary.skipped += 1
            else:
                summary.converted += 1
                summary.pages += meta.pages
                summary.converter_seconds += meta.seconds
            continue
        failure = failures.get(entry.key) or _lost(entry, rnd, layout)
        if failure.retryable:
            retry.append(failure)
        else:
            permanent[failure.error_class] += 1
    summary.permanent_by_class = dict(permanent)
    summary.retryable_by_class = dict(Counter(f.error_class for f in retry))
    if retry and rerun:
        plan: Plan = write_manifest(s3, layout, [f.to_manifest_entry() for f in retry], array_size, rnd + 1)
        summary.rerun_manifest_uri, summary.rerun_array_size, summary.rerun_entries = plan.manifest_uri, plan.array_size, plan.entries
    s3io.put_json(s3, bucket, layout.summary_key(rnd), summary)
    log.info("round %d: %d converted, %d skipped, %d failed for good, %d retryable%s", rnd, summary.converted,
             summary.skipped, sum(permanent.values()), len(retry), f" → round {rnd + 1}" if summary.rerun_entries else "")
    return summary


def failures_of_run(s3: Any, layout: RunLayout, rounds: int, limit: int = 1000) -> list[FailureRecord]:
    """The failures still standing at the end: each key's record from the last round it appeared in."""
    latest: dict[str, FailureRecord] = {}
    for rnd in range(rounds):
        latest.update(_latest_failures(s3, layout.run.bucket, layout.failures_prefix(rnd)))
    done_keys = {m.source_uri for rnd in range(rounds) for m in _all_records(s3, layout.run.bucket, layout.results_prefix(rnd), OutputMeta)}
    standing = [f for f in latest.values() if f"s3://{f.bucket}/{f.key}" not in done_keys]
    return sorted(standing, key=lambda f: (f.error_class, f.key))[:limit]


def _all_records(s3: Any, bucket: str, prefix: str, cls: type) -> list[Any]:
    records: list[Any] = []
    for obj in s3io.iter_objects(s3, S3Uri(bucket, prefix)):
        records.extend(s3io.read_jsonl(s3, bucket, obj.key, cls))
    return records


def _latest_failures(s3: Any, bucket: str, prefix: str) -> dict[str, FailureRecord]:
    """Per shard only its last attempt's file counts: a later attempt redid everything not done."""
    latest_file: dict[str, tuple[int, str]] = {}
    for obj in s3io.iter_objects(s3, S3Uri(bucket, prefix)):
        name = obj.key.rsplit("/", 1)[-1]
        shard, _, rest = name.partition(".attempt-")
        attempt = int(rest.split(".", 1)[0]) if rest[:1].isdigit() else 0
        if attempt >= latest_file.get(shard, (-1, ""))[0]:
            latest_file[shard] = (attempt, obj.key)
    failures: dict[str, FailureRecord] = {}
    for _attempt, key in latest_file.values():
        for record in s3io.read_jsonl(s3, bucket, key, FailureRecord):
            failures[record.key] = record
    return failures


def _lost(entry: ManifestEntry, rnd: int, layout: RunLayout) -> FailureRecord:
    """No output and no record: the child died without a word (SIGKILL, OOM). Worth another try."""
    return FailureRecord(
        key=entry.key, rel=entry.rel, bucket=entry.bucket, etag=entry.etag, size=entry.size, mtime=entry.mtime,
        error_class="interrupted", message="no output and no failure record: the child stopped without reporting",
        retryable=is_retryable("interrupted"), attempt=entry.attempt, shard=-1, round=rnd, run_id=layout.run.prefix,
    )
