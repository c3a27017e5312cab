"""Scale: a 10,000-child array is dealt fairly and exactly, each child reads only its own share,
planning memory stays bounded, and a worker makes two S3 requests per PDF (GET the PDF, PUT the
Markdown) on a first attempt, three on a retried one (a HEAD first), plus a small per-shard constant."""

from __future__ import annotations

import datetime as dt
import random
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from pdf2md import s3 as s3io
from pdf2md import spool, worker
from pdf2md.contracts import (
    MAX_ARRAY_SIZE,
    JobSettings,
    ManifestEntry,
    RunLayout,
    S3Uri,
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


class _Listing:
    """A paginated in-memory listing (folders in/d0/../d49/) generated one 1,000-key page at a time,
    and a sink for what the planner writes: shard manifests kept, the whole manifest counted."""

    def __init__(self, n: int, keep: bool = True) -> None:
        self.n = n
        self.keep = keep
        self.pages = 0
        self.manifest_lines = 0
        self.shards: dict[str, bytes] = {}

    def _keys(self, prefix: str) -> Iterator[int]:
        if prefix.startswith("in/d"):
            folder = int(prefix[4:].rstrip("/"))
            return iter(range(folder, self.n, 50))
        return iter(())

    def get_paginator(self, name: str) -> Any:
        listing = self

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str, Delimiter: str = "") -> Iterator[dict[str, Any]]:  # noqa: N803
                if Delimiter and Prefix == "in/":
                    yield {"CommonPrefixes": [{"Prefix": f"in/d{i}/"} for i in range(50)]}
                    return
                keys = list(listing._keys(Prefix))
                for start in range(0, len(keys), 1000):
                    listing.pages += 1
                    yield {"Contents": [{"Key": f"in/d{i % 50}/{i:07d}.pdf", "Size": 1000 + i % 7777, "ETag": f'"{i:x}"',
                                         "LastModified": EPOCH} for i in keys[start : start + 1000]]}

        return Paginator()

    def upload_fileobj(self, fh: Any, bucket: str, key: str, ExtraArgs: Any = None) -> None:  # noqa: N803
        while chunk := fh.read(1 << 20):
            self.manifest_lines += chunk.count(b"\n")

    def put_object(self, Bucket: str, Key: str, Body: bytes | str, **_: Any) -> None:  # noqa: N803
        self.shards[Key] = (Body.encode() if isinstance(Body, str) else Body) if self.keep else b""

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        import io

        from botocore.response import StreamingBody

        data = self.shards[Key]
        return {"Body": StreamingBody(io.BytesIO(data), len(data)), "ETag": '"x"'}


def test_each_child_of_a_10000_array_reads_only_its_own_share() -> None:
    listing = _Listing(25_000)
    plan = plan_round(listing, RunLayout(S3Uri("r", "runs/x/")), "s3://b/in/", "s3://b/out/", requested_array_size=10_000)
    assert plan.array_size == 10_000 and plan.entries == listing.manifest_lines == 25_000
    shard_objects = [k for k in listing.shards if "/manifest/" in k]
    assert len(shard_objects) == 10_000
    entries = [e for e in (ManifestEntry("b", f"in/d{i % 50}/{i:07d}.pdf", f"d{i % 50}/{i:07d}.pdf", 1000 + i % 7777, f"{i:x}", EPOCH.timestamp())
                           for i in range(25_000))]
    dealt = deal(entries, 10_000)
    mine = {}
    for index in (0, 1, 4_999, 5_000, 9_999):
        settings = JobSettings(manifest_uri=plan.manifest_uri, output_uri="s3://o/", run_uri="s3://r/runs/x/", run_id="r",
                               array_size=10_000, array_index=index)
        mine[index] = worker.read_shard(listing, settings)
        assert mine[index] == [e for i, e in enumerate(dealt) if shard_of(i, 10_000) == index], "the index % size contract holds"
    assert [len(v) for v in mine.values()] == [3, 3, 3, 2, 2]
    assert not set.intersection(*({e.key for e in v} for v in mine.values()))
    env = JobSettings(manifest_uri="s3://r/m/", output_uri="s3://o/", run_uri="s3://r/", run_id="r", array_size=10_000).to_env()
    assert JobSettings.from_env({**env, "AWS_BATCH_JOB_ARRAY_INDEX": "9999"}).array_index == 9_999


def _plan_peak(n: int) -> int:
    listing = _Listing(n, keep=False)
    tracemalloc.start()
    plan = plan_round(listing, RunLayout(S3Uri("r", "runs/x/")), "s3://b/in/", "s3://b/out/", requested_array_size=500)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert plan.entries == listing.manifest_lines == n and listing.pages == 50 * -(-n // 50 // 1000)
    assert plan.array_size == 500 and len([k for k in listing.shards if "/manifest/" in k]) == 500
    return peak


def test_planning_memory_is_bounded_whatever_the_number_of_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listings stream into external sorts that spill every CHUNK_BYTES and merge MAX_FANIN runs at
    a time; uploads spool to disk past SPOOL_BYTES: four times the keys, about the same peak (shrunk
    limits here; bench/scale.py measures 10 million keys with the real ones)."""
    monkeypatch.setattr(spool, "CHUNK_BYTES", 256 * 1024)
    monkeypatch.setattr(spool, "MAX_FANIN", 4)
    monkeypatch.setattr(s3io, "LIST_THREADS", 2)
    monkeypatch.setattr(s3io, "QUEUED_PAGES", 2)
    monkeypatch.setattr(s3io, "SPOOL_BYTES", 256 * 1024)
    small, large = _plan_peak(5_000), _plan_peak(20_000)
    assert large < 1.5 * small, (small, large)
    assert large < 8 * 2**20, large


def _kind(key: str) -> str:
    return "pdf" if "/in/" in key else "markdown" if key.endswith(".md") else "shard"


def _requests_of_one_shard(s3: Any, bucket: str, n: int, run_id: str, attempts: int = 1) -> list[list[tuple[str, str]]]:
    """Each attempt's S3 requests (operation, kind) in order, for one child of a one-shard plan."""
    for i in range(n):
        sample = GOOD_SAMPLES[i % len(GOOD_SAMPLES)]
        s3.put_object(Bucket=bucket, Key=f"{run_id}/in/{i:02d}-{sample}", Body=(SAMPLES / sample).read_bytes())
    layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
    plan = plan_round(s3, layout, f"s3://{bucket}/{run_id}/in/", f"s3://{bucket}/{run_id}/out/", requested_array_size=2)
    whole = layout.uri(layout.manifest_key(0))
    seen: list[list[tuple[str, str]]] = []
    for attempt in range(1, attempts + 1):
        settings = JobSettings(manifest_uri=whole if n == 1 else plan.manifest_uri, output_uri=f"s3://{bucket}/{run_id}/out/",
                               run_uri=f"s3://{bucket}/runs/{run_id}/", run_id=run_id, array_size=plan.array_size if n > 1 else 1,
                               backend="text", pdf_timeout_s=60, attempt=attempt)
        client = s3io.client()
        calls: list[tuple[str, str]] = []

        def count(request: Any, event_name: str, calls: list[tuple[str, str]] = calls, **_: Any) -> None:
            calls.append((event_name.rsplit(".", 1)[-1], _kind(unquote(urlsplit(request.url).path).removeprefix(f"/{bucket}/"))))

        client.meta.events.register("before-send.s3", count)
        assert worker.run(settings, s3=client) == worker.EXIT_DONE
        seen.append(calls)
    return seen


def test_a_worker_makes_three_requests_per_pdf_plus_a_shard_constant(s3: Any, bucket: str) -> None:
    (small,) = _requests_of_one_shard(s3, bucket, 6, "small")
    (large,) = _requests_of_one_shard(s3, bucket, 18, "large")
    assert len(large) - len(small) == 3 * (18 - 6) // 2, "two shards: this child holds half the PDFs"
    per_pdf = Counter(k for k in large if k[1] != "shard")
    # Its GET (pinned to the listed ETag), its Markdown, and one HEAD of the PDF after the write (was it
    # replaced while it converted?).
    assert per_pdf == {("GetObject", "pdf"): 9, ("PutObject", "markdown"): 9, ("HeadObject", "pdf"): 9}
    shard = Counter(k for k in large if k[1] == "shard")
    assert shard == Counter(k for k in small if k[1] == "shard")
    assert "ListObjectsV2" not in {op for op, _ in large}, "no child lists anything"
    startup = large[: large.index(("GetObject", "pdf"))]
    # Its shard manifest, its progress record, its progress band (read, conditional write).
    assert Counter(startup) == {("GetObject", "shard"): 2, ("PutObject", "shard"): 2}, startup
    # At the end: failures, results, progress record, band read and write.
    assert sum(shard.values()) - len(startup) <= 5, shard


def test_a_retried_attempt_checks_each_output_once_and_converts_nothing_twice(s3: Any, bucket: str) -> None:
    first, retry = _requests_of_one_shard(s3, bucket, 8, "retry", attempts=2)
    assert Counter(k for k in first if k[1] != "shard") == {("GetObject", "pdf"): 4, ("PutObject", "markdown"): 4,
                                                            ("HeadObject", "pdf"): 4}
    assert Counter(k for k in retry if k[1] != "shard") == {("HeadObject", "markdown"): 4}, "finished PDFs cost one HEAD"
    assert len([k for k in retry if k[1] == "shard"]) <= 9
