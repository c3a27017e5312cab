"""Scale: a 10,000-child array is dealt fairly and exactly, planning memory stays linear and small,
and a worker makes two S3 requests per PDF (GET the PDF, PUT the Markdown) plus a per-shard constant."""

from __future__ import annotations

import datetime as dt
import io
import random
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from batch_jobs import worker
from pdf2md import s3 as s3io
from pdf2md.contracts import (
    MAX_ARRAY_SIZE,
    JobSettings,
    ManifestEntry,
    RunLayout,
    S3Uri,
    dump_jsonl,
    effective_array_size,
    shard_of,
)
from pdf2md.plan import deal, plan_round
from tests.conftest import GOOD_SAMPLES, SAMPLES

EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def _entries(n: int, seed: int = 7) -> list[ManifestEntry]:
    rnd = random.Random(seed)
    return [ManifestEntry(bucket="b", key=f"in/{i:06d}.pdf", rel=f"{i:06d}.pdf", size=rnd.randint(1_000, 50_000_000),
                          etag=f"{i:x}") for i in range(n)]


def test_a_10000_array_over_25000_pdfs_gets_every_pdf_exactly_once_in_fair_shares() -> None:
    entries = _entries(25_000)
    size = effective_array_size(len(entries), 10_000)
    assert size == MAX_ARRAY_SIZE == 10_000
    assert effective_array_size(len(entries), 50_000) == 10_000, "never more than AWS's 10,000 children"
    dealt = deal(entries, size)
    shards: dict[int, list[ManifestEntry]] = defaultdict(list)
    for index, entry in enumerate(dealt):
        shards[shard_of(index, size)].append(entry)
    assert sorted(shards) == list(range(size)), "every child has work"
    keys = [e.key for shard in shards.values() for e in shard]
    assert len(keys) == len(set(keys)) == len(entries), "each PDF in exactly one shard"
    counts = Counter(len(s) for s in shards.values())
    assert counts == {3: 5_000, 2: 5_000}
    # The snake deal: the byte spread between any two children is at most one PDF's size.
    totals = [sum(e.size for e in s) for s in shards.values()]
    assert max(totals) - min(totals) <= max(e.size for e in entries)
    # A plain round-robin over the sorted list would give child 0 the biggest PDF of every lap.
    ordered = sorted(entries, key=lambda e: -e.size)
    naive = [sum(e.size for e in ordered[i::size]) for i in range(size)]
    assert max(totals) - min(totals) < max(naive) - min(naive)


class _ManifestOnly:
    """get_object on one in-memory manifest: what a child reads at start-up."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        from botocore.response import StreamingBody

        return {"Body": StreamingBody(io.BytesIO(self.data), len(self.data))}


def test_children_at_the_edges_of_a_10000_array_read_their_own_share() -> None:
    dealt = deal(_entries(25_000), 10_000)
    client = _ManifestOnly(b"".join(dump_jsonl(dealt)))
    mine = {}
    for index in (0, 1, 4_999, 5_000, 9_999):
        settings = JobSettings(manifest_uri="s3://runs/m.jsonl", output_uri="s3://o/", run_uri="s3://runs/", run_id="r",
                               array_size=10_000, array_index=index)
        mine[index] = worker._my_entries(client, settings)
    assert [len(v) for v in mine.values()] == [3, 3, 3, 2, 2]
    assert mine[9_999] == [dealt[9_999], dealt[19_999]]
    assert not set.intersection(*({e.key for e in v} for v in mine.values()))
    env = JobSettings(manifest_uri="s3://r/m", output_uri="s3://o/", run_uri="s3://r/", run_id="r", array_size=10_000).to_env()
    assert JobSettings.from_env({**env, "AWS_BATCH_JOB_ARRAY_INDEX": "9999"}).array_index == 9_999


class _Listing:
    """A paginated in-memory listing generated one 1,000-key page at a time, and a manifest sink."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pages = 0
        self.manifest_lines = 0

    def get_paginator(self, name: str) -> Any:
        listing = self

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:  # noqa: N803
                count = listing.n if Prefix.startswith("in/") else 0
                for start in range(0, count, 1000):
                    listing.pages += 1
                    yield {"Contents": [{"Key": f"in/d{i % 50}/{i:07d}.pdf", "Size": 1000 + i % 7777, "ETag": f'"{i:x}"',
                                         "LastModified": EPOCH} for i in range(start, min(count, start + 1000))]}

        return Paginator()

    def upload_fileobj(self, fh: Any, bucket: str, key: str, ExtraArgs: Any = None) -> None:  # noqa: N803
        while chunk := fh.read(1 << 20):
            self.manifest_lines += chunk.count(b"\n")


def test_planning_memory_is_linear_and_small() -> None:
    """The listing streams page by page; what stays is one ManifestEntry per PDF (sorted to deal),
    well under 1 KB each: 100,000 keys plan in ~50 MB (bench/scale.py measures that run)."""
    peaks = {}
    for n in (5_000, 20_000):
        listing = _Listing(n)
        tracemalloc.start()
        plan = plan_round(listing, RunLayout(S3Uri("r", "runs/x/")), "s3://b/in/", "s3://b/out/", requested_array_size=10_000)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert plan.entries == listing.manifest_lines == n and listing.pages == n // 1000
        assert plan.array_size == min(n, 10_000)
    assert peaks[20_000] / 20_000 < 1024
    assert peaks[20_000] < 4.5 * peaks[5_000], "memory grows linearly with the keys, not faster"


def _requests_of_one_shard(s3: Any, bucket: str, n: int, run_id: str) -> Counter[tuple[str, str]]:
    for i in range(n):
        sample = GOOD_SAMPLES[i % len(GOOD_SAMPLES)]
        s3.put_object(Bucket=bucket, Key=f"{run_id}/in/{i:02d}-{sample}", Body=(SAMPLES / sample).read_bytes())
    layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
    plan = plan_round(s3, layout, f"s3://{bucket}/{run_id}/in/", f"s3://{bucket}/{run_id}/out/", requested_array_size=2)
    settings = JobSettings(manifest_uri=plan.manifest_uri, output_uri=f"s3://{bucket}/{run_id}/out/",
                           run_uri=f"s3://{bucket}/runs/{run_id}/", run_id=run_id, array_size=1, backend="text", pdf_timeout_s=60)
    client = s3io.client()
    seen: Counter[tuple[str, str]] = Counter()

    def count(request: Any, event_name: str, **_: Any) -> None:
        key = unquote(urlsplit(request.url).path).removeprefix(f"/{bucket}/")
        kind = "pdf" if "/in/" in key else "markdown" if key.endswith(".md") else "shard"
        seen[(event_name.rsplit(".", 1)[-1], kind)] += 1

    client.meta.events.register("before-send.s3", count)
    assert worker.run(settings, s3=client) == worker.EXIT_DONE
    return seen


def test_a_worker_makes_two_requests_per_pdf_plus_a_shard_constant(s3: Any, bucket: str) -> None:
    small = _requests_of_one_shard(s3, bucket, 3, "small")
    large = _requests_of_one_shard(s3, bucket, 9, "large")
    assert sum(large.values()) - sum(small.values()) == 2 * (9 - 3), (small, large)
    assert {k: v for k, v in large.items() if k[1] != "shard"} == {("GetObject", "pdf"): 9, ("PutObject", "markdown"): 9}
    shard = {k: v for k, v in large.items() if k[1] == "shard"}
    assert shard == {k: v for k, v in small.items() if k[1] == "shard"}
    # Manifest GET, one output listing, progress running + done, failures and results files.
    assert sum(shard.values()) <= 6, shard
