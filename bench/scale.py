"""Scale: planning N keys (default 100,000; `--keys 10000000` is the full size) into an array of up to
10,000 children, a child's start-up, the worker's S3 requests per PDF, reduce and status at full width.

Run as `.venv/bin/python bench/scale.py [--keys 100000] [--array-size 10000] [--pdfs 20] [--json]`.

1. Planning runs the real pdf2md.plan code (plan_round: parallel listing -> triage sort -> size sort ->
   snake deal -> manifest.jsonl + one object per shard) in a fresh process against a GENERATED listing
   (FakeS3 below, not the emulator: moto would need days to hold ten million objects). It counts
   requests and bytes; peak memory is the process's maximum RSS, the interpreter included.
2. Child start-up: the real pdf2md.worker.run of one child against the manifest the planner just wrote
   (the fake keeps the measured child's shard object), stopped before its first PDF: its S3 requests
   and the bytes it read, against its own share of the manifest.
3. Requests per PDF: one real worker shard converts --pdfs PDFs against the local emulator (moto server),
   then a retried attempt (AWS_BATCH_JOB_ATTEMPT=2) after half the outputs were deleted, with a botocore
   `before-send` hook counting every S3 request per key.
4. Reduce and status at `--array-size` shards: the real reduce_round, and what the status page and
   `pdf2md status` do per round (progress.read_round, status.round_progress, status.throughput_series)
   against FakeS3 holding every shard's records, each request delayed by SIMULATED_LATENCY_S (a typical
   in-region S3 round trip), since their time is mostly waiting on S3.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from botocore.exceptions import ClientError  # noqa: E402
from botocore.response import StreamingBody  # noqa: E402

from pdf2md import plan, progress, reduce, status, worker  # noqa: E402
from pdf2md.contracts import (  # noqa: E402
    MAX_ARRAY_SIZE,
    JobSettings,
    ManifestEntry,
    OutputMeta,
    Plan,
    ProgressBand,
    RunLayout,
    S3Uri,
    ShardProgress,
    ShardState,
    band_of,
    shard_manifest_key,
)

PAGE = 1000
FOLDERS = 97
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
SIMULATED_LATENCY_S = 0.02
RUN = RunLayout(S3Uri("runs", "pdf2md-runs/bench/"))


class FakeS3:
    """Just enough of an S3 client for the planner, a child's start-up, reduce and status: listings of
    in/batch-XX/ generated page by page (the first 10 % already have newer Markdown under out/), objects
    held in memory only where `keep` says so (everything else is read through and counted)."""

    def __init__(self, n_keys: int = 0, keep: tuple[str, ...] = (), latency_s: float = 0.0) -> None:
        self.n_keys = n_keys
        self.converted = n_keys // 10
        self.keep = keep
        self.latency_s = latency_s
        self.objects: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []
        self.bytes_read = 0

    def _call(self, op: str, key: str = "") -> None:
        self.requests[op] += 1
        self.log.append((op, key))
        if self.latency_s:
            time.sleep(self.latency_s)

    @staticmethod
    def _input(i: int) -> dict[str, Any]:
        return {"Key": f"in/batch-{i % FOLDERS:02d}/doc-{i:08d}.pdf", "Size": 10_000 + (i * 7919) % 5_000_000,
                "ETag": f'"{i:032x}"', "LastModified": EPOCH + dt.timedelta(seconds=i)}

    def _output(self, i: int) -> dict[str, Any]:
        src = self._input(i)
        return {"Key": "out/" + src["Key"][3:-4] + ".md", "Size": 1000, "ETag": '"md"',
                "LastModified": src["LastModified"] + dt.timedelta(days=1)}

    def _pages(self, prefix: str, delimiter: str) -> Iterator[dict[str, Any]]:
        top, _, rest = prefix.partition("/")
        if top in ("in", "out") and not rest:
            self._call("ListObjectsV2")
            yield {"CommonPrefixes": [{"Prefix": f"{top}/batch-{b:02d}/"} for b in range(FOLDERS)]}
            return
        if top in ("in", "out") and rest.startswith("batch-"):
            folder = int(rest[6:8])
            n, make = (self.n_keys, self._input) if top == "in" else (self.converted, self._output)
            ids = range(folder, n, FOLDERS)
            for start in range(0, len(ids), PAGE):
                self._call("ListObjectsV2")
                yield {"Contents": [make(i) for i in ids[start : start + PAGE]]}
            return
        self._call("ListObjectsV2")
        keys = sorted(k for k in self.objects if k.startswith(prefix))
        yield {"Contents": [{"Key": k, "Size": len(self.objects[k]), "ETag": '"e"', "LastModified": EPOCH} for k in keys]}

    def get_paginator(self, name: str) -> Any:
        outer = self

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str, Delimiter: str = "") -> Iterator[dict[str, Any]]:  # noqa: N803
                return outer._pages(Prefix, Delimiter)

        return Paginator()

    def upload_fileobj(self, fh: Any, bucket: str, key: str, ExtraArgs: Any = None) -> None:  # noqa: N803
        self._call("PutObject", key)
        data = bytearray()
        while chunk := fh.read(1 << 20):
            if any(key.endswith(k) for k in self.keep):
                data += chunk
        if any(key.endswith(k) for k in self.keep):
            self.objects[key] = bytes(data)

    def put_object(self, Bucket: str, Key: str, Body: bytes | str, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        self._call("PutObject", Key)
        if "IfMatch" in kwargs and Key in self.objects and kwargs["IfMatch"].strip('"') != self._etag(Key):
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        if any(Key.endswith(k) or k == "*" for k in self.keep) or "progress" in Key or Key.endswith(".json"):
            self.objects[Key] = Body.encode() if isinstance(Body, str) else Body
        return {}

    def _etag(self, key: str) -> str:
        return f"{hash(self.objects[key]) & 0xFFFFFFFF:08x}"

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self._call("GetObject", Key)
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        data = self.objects[Key]
        self.bytes_read += len(data)
        return {"Body": StreamingBody(io.BytesIO(data), len(data)), "ETag": f'"{self._etag(Key)}"'}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self._call("HeadObject")
        raise ClientError({"Error": {"Code": "404"}}, "HeadObject")


# --- 1 + 2: planner and child start-up (in a fresh process, for its peak RSS) -------------------


def plan_and_start(n_keys: int, array_size: int) -> dict[str, Any]:
    shard = array_size - 1
    fake = FakeS3(n_keys, keep=(f"shard-{shard:05d}-of-{array_size:05d}.jsonl",))
    started, cpu = time.perf_counter(), time.process_time()
    result = plan.plan_round(fake, RUN, "s3://pdfs/in/", "s3://pdfs/out/", requested_array_size=array_size)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    planner_requests = dict(fake.requests)
    share = fake.objects[next(k for k in fake.objects if k.endswith(fake.keep[0]))]
    fake.requests.clear()
    fake.log.clear()
    fake.bytes_read = 0
    settings = JobSettings(manifest_uri=result.manifest_uri, output_uri="s3://pdfs/out/", run_uri=str(RUN.run), run_id="bench",
                           array_size=result.array_size, array_index=shard, backend="text")
    stop = worker.StopFlag()
    stop.set()  # stopped before its first PDF: what it did until its final records is its start-up
    worker.run(settings, s3=fake, stop=stop)
    startup = [op for op, _key in fake.log[: next(i for i, (_op, key) in enumerate(fake.log) if "/failures/" in key)]]
    startup_bytes = fake.bytes_read
    return {"keys": n_keys, "array_size": result.array_size, "entries": result.entries, "skipped": result.skipped,
            "planner_wall_s": round(wall, 1), "planner_cpu_s": round(cpu, 1), "planner_peak_mib": round(peak_mib, 1), "planner_requests": planner_requests,
            "child_startup_requests": len(startup), "child_startup_detail": dict(Counter(startup)),
            "child_share_entries": len(share.splitlines()), "child_share_bytes": len(share),
            "child_manifest_bytes_ratio": round(startup_bytes / max(len(share), 1), 3)}


# --- 3: requests per PDF against the emulator ---------------------------------------------------


def requests_per_pdf(n_pdfs: int) -> dict[str, Any]:
    import boto3

    from pdf2md import s3 as s3io
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
        attempts = []
        for attempt in (1, 2):
            if attempt == 2:
                for o in list(s3io.iter_objects(admin, S3Uri("bench", "out/")))[::2]:
                    admin.delete_object(Bucket="bench", Key=o.key)
            settings = JobSettings(manifest_uri=p.manifest_uri, output_uri="s3://bench/out/", run_uri="s3://bench/runs/r1/",
                                   run_id="r1", array_size=p.array_size, backend="text", pdf_timeout_s=120, attempt=attempt)
            client = s3io.client()
            per_key: Counter[str] = Counter()
            ops: Counter[tuple[str, str]] = Counter()

            def count(request: Any, event_name: str, per_key: Counter[str] = per_key, ops: Counter[tuple[str, str]] = ops, **_: Any) -> None:
                key = unquote(urlsplit(request.url).path).removeprefix("/bench/")
                kind = "pdf" if key.startswith("in/") else "markdown" if key.endswith(".md") else "shard"
                ops[(event_name.rsplit(".", 1)[-1], kind)] += 1
                if kind != "shard":
                    per_key[key.removeprefix("in/").removeprefix("out/").rsplit(".", 1)[0]] += 1

            client.meta.events.register("before-send.s3", count)
            code = worker.run(settings, s3=client)
            attempts.append({"exit": code, "per_key": per_key, "ops": ops})
    first, retry = attempts
    n_child = len(first["per_key"])
    return {"pdfs_in_child": n_child,
            "requests_per_pdf_first": round(sum(first["per_key"].values()) / n_child, 2),
            "requests_per_pdf_first_max": max(first["per_key"].values()),
            "requests_per_pdf_retry": max(retry["per_key"].values()),
            "requests_per_pdf_retry_mean": round(sum(retry["per_key"].values()) / n_child, 2),
            "shard_requests_first": sum(n for (_, kind), n in first["ops"].items() if kind == "shard"),
            "first_detail": {f"{op} {kind}": n for (op, kind), n in sorted(first["ops"].items())},
            "retry_detail": {f"{op} {kind}": n for (op, kind), n in sorted(retry["ops"].items())}}


# --- 4: reduce and status at full width ---------------------------------------------------------


def reduce_and_status(n_keys: int, array_size: int) -> dict[str, Any]:
    fake = FakeS3(keep=("*",), latency_s=SIMULATED_LATENCY_S)
    per_shard = max(n_keys // array_size, 1)
    meta = [OutputMeta(f"s3://pdfs/in/doc-{i}.pdf", "e", f"s3://pdfs/out/doc-{i}.md", "v", "text", 3, 1.0, "bench") for i in range(per_shard)]
    results = b"".join((m.to_json() + "\n").encode() for m in meta)
    # Every shard's manifest holds the PDFs its results name (reduce trusts records of its own PDFs only);
    # one body shared by all shards, as the results are, so memory stays that of one shard.
    manifest = b"".join((ManifestEntry("pdfs", f"in/doc-{i}.pdf", f"doc-{i}.pdf", 1000, "e").to_json() + "\n").encode()
                        for i in range(per_shard))
    plan_record = Plan(f"s3://runs/{RUN.shard_manifests_prefix(0)}", 0, per_shard * array_size, 0, 0, 0, per_shard * array_size,
                       0, array_size)
    fake.objects[RUN.plan_key(0)] = plan_record.to_json().encode()
    now = time.time()
    bands: dict[int, ProgressBand] = {}
    for shard in range(array_size):
        fake.objects[RUN.results_key(0, shard, 1)] = results
        fake.objects[shard_manifest_key(RUN.shard_manifests_prefix(0), shard, array_size)] = manifest
        fake.objects[RUN.failures_key(0, shard, 1)] = b""
        state = ShardState.RUNNING if shard % 7 else ShardState.DONE
        record = ShardProgress("bench", 0, shard, 1, state, per_shard, converted=per_shard * (shard % 10) // 10,
                               started_at=now - 3600 + shard % 600, updated_at=now - shard % 60)
        bands[band_of(shard)] = bands.get(band_of(shard), ProgressBand(0, band_of(shard))).merged(record)
    for band, merged in bands.items():
        fake.objects[RUN.band_key(0, band)] = merged.to_json().encode()
    fake.requests.clear()
    started = time.perf_counter()
    summary = reduce.reduce_round(fake, RUN, 0, "s3://pdfs/out/", array_size, rerun=True, run_id="bench")
    reduce_s = time.perf_counter() - started
    reduce_requests = sum(fake.requests.values())
    fake.requests.clear()
    started = time.perf_counter()
    records = progress.read_round(fake, RUN, 0)  # what pdf2md.status.run_status does for each round
    view = status.round_progress(0, records, {}, array_size, now)
    status.throughput_series(records, now)
    status_s = time.perf_counter() - started
    assert summary.converted == per_shard * array_size and view["shards"] == array_size
    return {"reduce_s": round(reduce_s, 2), "reduce_requests": reduce_requests, "status_refresh_s": round(status_s, 2),
            "status_requests": sum(fake.requests.values()), "simulated_latency_s": SIMULATED_LATENCY_S}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--array-size", type=int, default=MAX_ARRAY_SIZE)
    parser.add_argument("--pdfs", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text summary")
    parser.add_argument("--plan-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plan_only:
        print(json.dumps(plan_and_start(args.keys, args.array_size)))
        return 0
    child = subprocess.run([sys.executable, __file__, "--plan-only", "--keys", str(args.keys), "--array-size", str(args.array_size)],
                           capture_output=True, text=True, check=True)
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    figures.update(requests_per_pdf(args.pdfs))
    figures.update(reduce_and_status(args.keys, figures["array_size"]))
    if args.json:
        print(json.dumps(figures))
        return 0
    f = figures
    print(f"plan: {f['keys']:,} keys -> {f['entries']:,} to convert ({f['skipped']:,} up to date) in {f['array_size']:,} shards: "
          f"{f['planner_wall_s']} s wall ({f['planner_cpu_s']} s CPU), peak RSS {f['planner_peak_mib']} MiB; requests {f['planner_requests']}")
    print(f"child start-up: {f['child_startup_requests']} S3 requests {f['child_startup_detail']}, read "
          f"{f['child_manifest_bytes_ratio']}x its own share ({f['child_share_entries']} entries, {f['child_share_bytes']:,} B)")
    print(f"worker: {f['requests_per_pdf_first']} requests per PDF on a first attempt (max {f['requests_per_pdf_first_max']}), "
          f"at most {f['requests_per_pdf_retry']} on a retried one (mean {f['requests_per_pdf_retry_mean']}); "
          f"{f['shard_requests_first']} per shard")
    print(f"worker first: {f['first_detail']}\nworker retry: {f['retry_detail']}")
    print(f"reduce {f['array_size']:,} shards: {f['reduce_s']} s, {f['reduce_requests']:,} requests; status refresh "
          f"{f['status_refresh_s']} s, {f['status_requests']} requests (each request +{f['simulated_latency_s']} s simulated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
