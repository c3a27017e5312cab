"""A round's progress at any size: each shard's own record, and the bands a status view reads.

Each shard rewrites progress/shard-NNNNN.json, then merges the same record into its band
(progress-bands/band-NNNN.json, PROGRESS_BAND shards per object) with a conditional PUT, reading again
when another shard of the band wrote first. A status view reads ceil(size / 100) bands, 100 objects at
10,000 shards, instead of one object per shard; `summarize` turns them into the aggregate view (state
counts, a distribution of progress, the slowest, interrupted and failed shards by number, totals).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pdf2md import s3 as s3io
from pdf2md.contracts import ProgressBand, Record, RunLayout, S3Uri, ShardProgress, ShardState, band_of

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

BAND_TRIES = 6
"""Conditional merges tried before a band update is given up (the next update, or reduce, catches up)."""
READ_THREADS = 16
SLOWEST = 10
"""Running shards listed by name in the aggregate view."""
HISTOGRAM_BINS = 10


def every_s(array_size: int) -> float:
    """How often a running shard rewrites its progress: every 10 s, slower for big arrays so that the
    whole array stays near 200 updates per second (10,000 shards: every 50 s)."""
    return max(10.0, array_size / 200)


def publish(s3: S3Client, layout: RunLayout, record: ShardProgress) -> ShardProgress | None:
    """Write the shard's record, then merge it into its band; returns what the band held for this shard
    before (an earlier attempt's record: the caller's cue that some of its PDFs may be done already).

    The shard's own record is the one that must land (an error raises); a band that keeps failing is logged.
    """
    bucket = layout.run.bucket
    s3io.put_json(s3, bucket, layout.progress_key(record.round, record.shard), record)
    key = layout.band_key(record.round, band_of(record.shard))
    try:
        for _try in range(BAND_TRIES):
            band, etag = s3io.get_json_with_etag(s3, bucket, key, ProgressBand)
            before = next((r for r in band.records() if r.shard == record.shard), None) if band else None
            merged = (band or ProgressBand(record.round, band_of(record.shard))).merged(record)
            if s3io.put_json(s3, bucket, key, merged, if_match=etag, if_none_match=etag is None):
                return before
        log.warning("progress band %s: gave up after %d conflicting writes", key, BAND_TRIES)
    except (ClientError, BotoCoreError) as exc:
        log.warning("progress band %s not updated: %s", key, exc)
    return None


def read_round(s3: S3Client, layout: RunLayout, rnd: int, threads: int = READ_THREADS) -> list[ShardProgress]:
    """Every shard's latest record as the round's bands hold it: one LIST, then the bands in parallel."""
    bucket = layout.run.bucket
    keys = [o.key for o in s3io.iter_objects(s3, S3Uri(bucket, layout.bands_prefix(rnd))) if o.key.endswith(".json")]
    with ThreadPoolExecutor(threads) as pool:
        bands = list(pool.map(lambda key: s3io.get_json(s3, bucket, key, ProgressBand), keys))
    return sorted((r for band in bands if band for r in band.records()), key=lambda r: r.shard)


@dataclass(frozen=True)
class RoundProgress(Record):
    """A round at a glance: what a page shows instead of one row per shard."""

    round: int
    shards: int
    by_state: dict[str, int]
    assigned: int
    done: int
    converted: int
    skipped: int
    failed: int
    pages: int
    histogram: list[int]
    """Shards by share of their PDFs done: 0-10 %, 10-20 %, ..., 90-100 % (a finished shard is in the last bin)."""
    slowest: list[dict[str, Any]] = field(default_factory=list)
    """The running shards furthest behind: shard, done, assigned, updated_at."""
    interrupted: list[int] = field(default_factory=list)
    failed_shards: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    """Running shards with no update for three progress periods (a child that died without a word)."""


def summarize(rnd: int, records: list[ShardProgress], array_size: int = 0, now: float | None = None) -> RoundProgress:
    """The aggregate view of a round's records (array_size, when known, sets how often shards report)."""
    now = time.time() if now is None else now
    stale_after = 3 * every_s(array_size or len(records))
    histogram = [0] * HISTOGRAM_BINS
    running: list[tuple[float, ShardProgress]] = []
    for r in records:
        done = r.converted + r.skipped + r.failed
        share = 1.0 if r.state != ShardState.RUNNING or not r.assigned else min(done / r.assigned, 1.0)
        histogram[min(int(share * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
        if r.state == ShardState.RUNNING:
            running.append((share, r))
    running.sort(key=lambda item: (item[0], item[1].shard))
    return RoundProgress(
        round=rnd, shards=len(records), by_state=dict(Counter(str(r.state) for r in records)),
        assigned=sum(r.assigned for r in records), done=sum(r.converted + r.skipped + r.failed for r in records),
        converted=sum(r.converted for r in records), skipped=sum(r.skipped for r in records),
        failed=sum(r.failed for r in records), pages=sum(r.pages for r in records), histogram=histogram,
        slowest=[{"shard": r.shard, "done": r.converted + r.skipped + r.failed, "assigned": r.assigned, "updated_at": r.updated_at}
                 for _share, r in running[:SLOWEST]],
        interrupted=[r.shard for r in records if r.state == ShardState.INTERRUPTED],
        failed_shards=[r.shard for r in records if r.state == ShardState.FAILED],
        stale=[r.shard for _share, r in running if now - r.updated_at > stale_after],
    )
