"""Scale: planning 100,000 keys into a 10,000-child array, and the worker's S3 requests per PDF.

Run as `.venv/bin/python bench/scale.py [--keys 100000] [--array-size 10000] [--pdfs 20]`.

1. Planning runs the real pdf2md.plan code (plan_round: list_pdfs -> output_index -> pending -> deal ->
   write_jsonl) against an in-memory S3 listing that generates each 1,000-key page on demand (moto
   would need ~11 minutes just to store 100k objects). Time is measured without tracemalloc, peak
   Python memory in a second pass with it.
2. Requests: one real worker shard converts --pdfs PDFs against the local emulator (moto server),
   with a botocore `before-send` hook counting every S3 request it makes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pdf2md import plan  # noqa: E402
from pdf2md.contracts import MAX_ARRAY_SIZE, RunLayout, S3Uri, shard_of  # noqa: E402

PAGE = 1000
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


class FakeListing:
    """Just enough of an S3 client for plan_round: paginated listings generated page by page, and an
    upload_fileobj that reads the manifest through and keeps only its size and line count."""

    def __init__(self, n_keys: int, converted_share: float = 0.1) -> None:
        self.n_keys = n_keys
        self.converted = int(n_keys * converted_share)
        self.pages_listed = 0
        self.uploaded: dict[str, tuple[int, int]] = {}

    def _input(self, i: int) -> dict[str, Any]:
        return {"Key": f"in/batch-{i % 97:02d}/doc-{i:07d}.pdf", "Size": 10_000 + (i * 7919) % 5_000_000,
                "ETag": f'"{i:032x}"', "LastModified": EPOCH + dt.timedelta(seconds=i)}

    def _pages(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:  # noqa: N803 - boto3's names
        if Prefix.startswith("in/"):
            n, make = self.n_keys, self._input
        else:  # the output prefix: the first `converted` PDFs already have newer Markdown
            def make(i: int) -> dict[str, Any]:
                src = self._input(i)
                return {"Key": "out/" + src["Key"][3:-4] + ".md", "Size": 1000, "ETag": '"md"',
                        "LastModified": src["LastModified"] + dt.timedelta(days=1)}
            n = self.converted
        for start in range(0, n, PAGE):
            self.pages_listed += 1
            yield {"Contents": [make(i) for i in range(start, min(n, start + PAGE))]}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        outer = self

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:  # noqa: N803
                return outer._pages(Bucket, Prefix)

        return Paginator()

    def upload_fileobj(self, fh: Any, bucket: str, key: str, ExtraArgs: dict[str, Any] | None = None) -> None:  # noqa: N803
        size = lines = 0
        while chunk := fh.read(1 << 20):
            size += len(chunk)
            lines += chunk.count(b"\n")
        self.uploaded[key] = (size, lines)


def plan_once(n_keys: int, array_size: int) -> tuple[Any, FakeListing]:
    fake = FakeListing(n_keys)
    layout = RunLayout(S3Uri("runs", "pdf2md-runs/bench/"))
    result = plan.plan_round(fake, layout, "s3://pdfs/in/", "s3://pdfs/out/", requested_array_size=array_size)
    return result, fake


def bench_planning(n_keys: int, array_size: int) -> None:
    gc.collect()
    started = time.perf_counter()
    result, fake = plan_once(n_keys, array_size)
    seconds = time.perf_counter() - started
    size, lines = next(iter(fake.uploaded.values()))
    entries = list(plan.list_pdfs(FakeListing(n_keys), S3Uri("pdfs", "in/")))
    t = time.perf_counter()
    dealt = plan.deal(entries, array_size)
    stages = {"deal": time.perf_counter() - t}
    per_shard = Counter(shard_of(i, result.array_size) for i in range(len(dealt)))
    del entries, dealt
    gc.collect()
    tracemalloc.start()
    plan_once(n_keys, array_size)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"plan: {n_keys:,} keys listed in {fake.pages_listed} pages -> {result.entries:,} to convert "
          f"({result.skipped:,} up to date), array size {result.array_size:,}")
    print(f"plan: {seconds:.2f} s wall ({n_keys / seconds:,.0f} keys/s; deal alone {stages['deal']:.2f} s), "
          f"peak Python memory {peak / 2**20:.1f} MB (tracemalloc; {peak / n_keys:.0f} B per key)")
    print(f"plan: manifest {size / 2**20:.1f} MB, {lines:,} lines; per shard {min(per_shard.values())}-"
          f"{max(per_shard.values())} PDFs over {len(per_shard):,} shards")


def bench_requests(n_pdfs: int) -> None:
    import boto3

    from batch_jobs import worker
    from pdf2md import s3 as s3io
    from pdf2md.contracts import JobSettings
    from pdf2md.localbatch import aws_env, local_aws

    samples = REPO / "tests" / "data" / "pdfs"
    good = ("crazyones.pdf", "code_and_formula.pdf", "table_mislabeled_as_picture.pdf", "FC60_Times.pdf", "PDFBOX-2984-rotations.pdf")
    with local_aws(slots=1) as endpoint:
        os.environ.update(aws_env(endpoint))
        admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        admin.create_bucket(Bucket="bench")
        for i in range(n_pdfs):
            admin.put_object(Bucket="bench", Key=f"in/{i:03d}-{good[i % len(good)]}", Body=(samples / good[i % len(good)]).read_bytes())
        layout = RunLayout(S3Uri("bench", "runs/r1/"))
        p = plan.plan_round(admin, layout, "s3://bench/in/", "s3://bench/out/", requested_array_size=2)
        settings = JobSettings(manifest_uri=p.manifest_uri, output_uri="s3://bench/out/", run_uri="s3://bench/runs/r1/",
                               run_id="r1", array_size=1, backend="text", pdf_timeout_s=120)
        client = s3io.client()
        seen: Counter[tuple[str, str]] = Counter()

        def count(request: Any, event_name: str, **_: Any) -> None:
            key = unquote(urlsplit(request.url).path).removeprefix("/bench/")
            kind = "pdf" if key.startswith("in/") else "markdown" if key.startswith("out/") and key.endswith(".md") else "shard"
            seen[(event_name.rsplit(".", 1)[-1], kind)] += 1

        client.meta.events.register("before-send.s3", count)
        started = time.perf_counter()
        code = worker.run(settings, s3=client)
        seconds = time.perf_counter() - started
    per_pdf = sum(n for (_, kind), n in seen.items() if kind != "shard")
    shard = sum(n for (_, kind), n in seen.items() if kind == "shard")
    detail = ", ".join(f"{op} {kind} {n}" for (op, kind), n in sorted(seen.items()))
    print(f"worker: {n_pdfs} PDFs in {seconds:.1f} s (exit {code}), {sum(seen.values())} S3 requests = "
          f"{per_pdf / n_pdfs:.2f} per PDF + {shard} per shard")
    print(f"worker: {detail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--array-size", type=int, default=MAX_ARRAY_SIZE)
    parser.add_argument("--pdfs", type=int, default=20)
    args = parser.parse_args()
    bench_planning(args.keys, args.array_size)
    bench_requests(args.pdfs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
