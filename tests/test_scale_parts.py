"""The parts that let a round scale: the external sort, the parallel listing, S3 Inventory input, the
sharded manifest, progress bands, and reduce without an output listing (against the emulator)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import threading
from typing import Any

import pytest

from pdf2md import progress
from pdf2md import s3 as s3io
from pdf2md.contracts import (
    ErrorKind,
    FailureRecord,
    ManifestEntry,
    OutputMeta,
    RunLayout,
    RunReport,
    RunStatus,
    S3Uri,
    ShardProgress,
    ShardState,
    output_key,
    shard_of,
)
from pdf2md.inventory import iter_inventory
from pdf2md.plan import plan_round
from pdf2md.reduce import failures_of_run, reduce_round
from pdf2md.spool import ExternalSort, sort_token


def test_external_sort_matches_sorted_through_spills_and_cascaded_merges() -> None:
    rnd = random.Random(3)
    lines = [(sort_token("".join(rnd.choice("ab\t\n\\é") for _ in range(rnd.randint(0, 6)))) + b"\t%d\n" % i) for i in range(3000)]
    with ExternalSort(chunk_bytes=500, max_fanin=3) as sorter:
        sorter.extend(lines)
        assert sorter.count == 3000
        assert list(sorter.sorted()) == sorted(lines)
    assert all(min(sort_token(t), default=0x20) >= 0x20 for t in ("a\tb", "x\ny", "\x01"))


def _put(s3: Any, bucket: str, key: str, body: bytes = b"%PDF-1.4") -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_parallel_listing_finds_exactly_what_a_plain_listing_finds(s3: Any, bucket: str) -> None:
    keys = [f"in/{a}/{b}/{i}.pdf" for a in "xyz" for b in "pq" for i in range(4)] + ["in/top.pdf", "in/x/mid.pdf", "in/z/p/q/r/deep.pdf"]
    for key in keys:
        _put(s3, bucket, key)
    found = [o.key for o in s3io.iter_objects_parallel(s3, S3Uri(bucket, "in/"), threads=3)]
    assert sorted(found) == sorted(keys) == sorted(o.key for o in s3io.iter_objects(s3, S3Uri(bucket, "in/")))


def test_a_listing_error_in_a_worker_reaches_the_caller() -> None:
    class Broken:
        def get_paginator(self, _name: str) -> Any:
            class Paginator:
                def paginate(self, **kwargs: Any) -> Any:
                    if kwargs["Prefix"] == "in/b/":
                        raise RuntimeError("listing in/b/ failed")
                    yield {"CommonPrefixes": [{"Prefix": "in/a/"}, {"Prefix": "in/b/"}]} if kwargs["Prefix"] == "in/" else {}
            return Paginator()

    with pytest.raises(RuntimeError, match="in/b/"):
        list(s3io.iter_objects_parallel(Broken(), S3Uri("b", "in/")))


def _inventory(s3: Any, bucket: str, rows: list[list[str]], schema: str = "Bucket, Key, Size, LastModifiedDate, ETag, IsLatest, IsDeleteMarker") -> str:
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_ALL).writerows(rows)
    s3.put_object(Bucket=bucket, Key="inv/src/cfg/data/part-0.csv.gz", Body=gzip.compress(text.getvalue().encode()))
    manifest = {"sourceBucket": bucket, "destinationBucket": f"arn:aws:s3:::{bucket}", "version": "2016-11-30",
                "fileFormat": "CSV", "fileSchema": schema, "files": [{"key": "inv/src/cfg/data/part-0.csv.gz", "size": 1}]}
    for stamp in ("2026-11-20T01-00Z", "2026-11-22T01-00Z"):
        s3.put_object(Bucket=bucket, Key=f"inv/src/cfg/{stamp}/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{bucket}/inv/src/cfg/"


def test_an_s3_inventory_replaces_the_input_listing(s3: Any, bucket: str) -> None:
    when = "2026-11-01T10:00:00.000Z"
    rows = [[bucket, "in/a+b%C3%A9.pdf", "10", when, "e1", "true", "false"],
            [bucket, "in/old.pdf", "11", when, "e2", "false", "false"],
            [bucket, "in/gone.pdf", "", when, "", "true", "true"],
            [bucket, "in/sub/c.PDF", "12", when, "e3", "true", "false"],
            [bucket, "other/d.pdf", "13", when, "e4", "true", "false"]]
    uri = _inventory(s3, bucket, rows)
    objects = list(iter_inventory(s3, uri, S3Uri(bucket, "in/")))
    assert [(o.key, o.size, o.etag) for o in objects] == [("in/a bé.pdf", 10, "e1"), ("in/sub/c.PDF", 12, "e3")]
    lists: list[str] = []
    s3.meta.events.register("before-send.s3.ListObjectsV2", lambda request, **_: lists.append(request.url))
    plan = plan_round(s3, RunLayout(S3Uri(bucket, "runs/inv/")), f"s3://{bucket}/in/", f"s3://{bucket}/out/", 2, inventory_uri=uri)
    assert (plan.listed, plan.entries) == (2, 2)
    assert not [u for u in lists if "prefix=in%2F" in u], "the input is not listed when an inventory is given"
    with pytest.raises(ValueError, match="is of bucket"):
        list(iter_inventory(s3, uri, S3Uri("another-bucket", "in/")))
    with pytest.raises(ValueError, match="lacks Size, LastModifiedDate, ETag"):
        list(iter_inventory(s3, _inventory(s3, bucket, [[bucket, "in/x.pdf"]], schema="Bucket, Key"), S3Uri(bucket, "in/")))


def test_the_planner_writes_each_childs_share_as_its_own_object(s3: Any, bucket: str) -> None:
    for i in range(11):
        _put(s3, bucket, f"in/f{i % 3}/{i:02d}.pdf", b"%PDF" + b"x" * (i * 37 % 101))
    _put(s3, bucket, "in/f0/00.PDF")  # collides with in/f0/00.pdf: refused
    layout = RunLayout(S3Uri(bucket, "runs/p/"))
    plan = plan_round(s3, layout, f"s3://{bucket}/in/", f"s3://{bucket}/out/", 4, run_id="p")
    assert (plan.entries, plan.collisions, plan.array_size) == (11, 1, 4)
    whole = list(s3io.read_jsonl(s3, bucket, layout.manifest_key(0), ManifestEntry))
    for shard in range(4):
        body = s3io.get_bytes(s3, bucket, f"runs/p/round-000/manifest/shard-{shard:05d}-of-00004.jsonl")
        assert [ManifestEntry.from_json(line) for line in body.splitlines()] == [e for i, e in enumerate(whole) if shard_of(i, 4) == shard]
    assert s3io.get_json(s3, bucket, layout.plan_key(0), type(plan)) == plan
    refused = list(s3io.read_jsonl(s3, bucket, layout.failures_prefix(0) + "planner.jsonl", FailureRecord))
    assert [(f.key, f.error_class) for f in refused] == [("in/f0/00.pdf", ErrorKind.KEY_COLLISION)]


def _record(shard: int, state: ShardState, done: int = 0, updated: float = 100.0) -> ShardProgress:
    return ShardProgress(run_id="r", round=0, shard=shard, attempt=1, state=state, assigned=10, converted=done, updated_at=updated)


def test_shards_merge_into_their_band_concurrently_and_nothing_is_lost(s3: Any, bucket: str) -> None:
    layout = RunLayout(S3Uri(bucket, "runs/b/"))
    shards = [3, 7, 42, 99, 100, 150]

    def run(shard: int) -> None:
        assert progress.publish(s3, layout, _record(shard, ShardState.RUNNING)) is None
        progress.publish(s3, layout, _record(shard, ShardState.DONE, done=10))

    threads = [threading.Thread(target=run, args=(shard,)) for shard in shards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = progress.read_round(s3, layout, 0)
    assert [(r.shard, r.state) for r in records] == [(s, ShardState.DONE) for s in shards]
    assert len(list(s3io.iter_objects(s3, S3Uri(bucket, layout.bands_prefix(0))))) == 2
    earlier = progress.publish(s3, layout, _record(7, ShardState.RUNNING))
    assert earlier is not None and earlier.state == ShardState.DONE, "a retried attempt learns of the earlier one"


def test_the_round_summary_names_the_slow_interrupted_and_stale_shards() -> None:
    records = [_record(0, ShardState.DONE, 10), _record(1, ShardState.RUNNING, 1, updated=990), _record(2, ShardState.RUNNING, 5, updated=10),
               _record(3, ShardState.INTERRUPTED, 4), _record(4, ShardState.FAILED)]
    view = progress.summarize(0, records, array_size=5, now=1000)
    assert view.by_state == {"done": 1, "running": 2, "interrupted": 1, "failed": 1}
    assert view.histogram == [0, 1, 0, 0, 0, 1, 0, 0, 0, 3] and view.done == 20
    assert [s["shard"] for s in view.slowest] == [1, 2] and view.interrupted == [3] and view.failed_shards == [4]
    assert view.stale == [2]


def test_reduce_heads_only_the_pdfs_of_a_child_that_never_reported_and_names_the_run(s3: Any, bucket: str) -> None:
    for i in range(6):
        _put(s3, bucket, f"in/{i}.pdf")
    layout = RunLayout.for_run(f"s3://{bucket}/runs/", "manual__2026:01")
    plan = plan_round(s3, layout, f"s3://{bucket}/in/", f"s3://{bucket}/out/", 2)
    out = S3Uri(bucket, "out/")
    shard0 = [ManifestEntry.from_json(x) for x in s3io.get_bytes(s3, bucket, layout.shard_manifests_prefix(0) + "shard-00000-of-00002.jsonl").splitlines()]
    shard1 = [ManifestEntry.from_json(x) for x in s3io.get_bytes(s3, bucket, layout.shard_manifests_prefix(0) + "shard-00001-of-00002.jsonl").splitlines()]
    # Child 0 finished: one converted, one failed for good, one skipped. Child 1 was killed after one output.
    meta = OutputMeta(shard0[0].uri, shard0[0].etag, "", "v", "text", 2, 1.5, "r")
    s3io.write_jsonl(s3, bucket, layout.results_key(0, 0, 1), [meta])
    s3io.write_jsonl(s3, bucket, layout.failures_key(0, 0, 1), [FailureRecord.of(shard0[1], "corrupt", "bad", shard=0, round=0, run_id="r")])
    s3.put_object(Bucket=bucket, Key=output_key(out, shard1[0].rel), Body=b"# done")
    heads: list[str] = []
    s3.meta.events.register("before-send.s3.HeadObject", lambda request, **_: heads.append(request.url))
    summary = reduce_round(s3, layout, 0, f"s3://{bucket}/out/", 2, rerun=True, run_id="manual__2026:01")
    assert len(heads) == len(shard1), "one HEAD per PDF of the silent child, none for the child that reported"
    assert (summary.converted, summary.skipped, summary.pages) == (1, 1 + 1, 2)
    assert summary.permanent_by_class == {"corrupt": 1} and summary.retryable_by_class == {"interrupted": len(shard1) - 1}
    rerun = list(s3io.read_jsonl(s3, bucket, layout.manifest_key(1), ManifestEntry))
    assert sorted(e.key for e in rerun) == sorted(e.key for e in shard1[1:]) and {e.attempt for e in rerun} == {2}
    assert plan.entries == 6
    # The bug that was: a lost PDF's record named the run's S3 prefix instead of the run.
    s3io.write_jsonl(s3, bucket, layout.failures_key(1, 0, 1), [])
    standing = failures_of_run(s3, layout, 1)
    assert {f.error_class for f in standing} == {"corrupt"}
    summary_default = reduce_round(s3, layout, 0, f"s3://{bucket}/out/", 2, rerun=False)
    assert summary_default.retryable_by_class == summary.retryable_by_class


def test_lost_pdfs_name_the_run_not_its_prefix(s3: Any, bucket: str) -> None:
    """The bug that was: reduce recorded run_id=<the run's S3 prefix> for PDFs lost without a word."""
    from pdf2md.contracts import Plan
    from pdf2md.reduce import ShardFiles, _ShardReducer

    _put(s3, bucket, "in/a.pdf")
    run_id = "scheduled__2026-11-23T10:00:00+00:00"
    layout = RunLayout.for_run(f"s3://{bucket}/runs/", run_id)
    plan_round(s3, layout, f"s3://{bucket}/in/", f"s3://{bucket}/out/", 2)
    plan = s3io.get_json(s3, bucket, layout.plan_key(0), Plan)
    named = _ShardReducer(s3, layout, plan, S3Uri(bucket, "out/"), run_id).reduce(0, ShardFiles())
    assert [(f.key, f.error_class, f.run_id) for f in named.retry] == [("in/a.pdf", ErrorKind.INTERRUPTED, run_id)]
    summary = reduce_round(s3, layout, 0, f"s3://{bucket}/out/", 2, rerun=False)
    assert summary.retryable_by_class == {"interrupted": 1}


def test_closed_sets_are_enums_that_serialise_as_their_old_strings() -> None:
    record = _record(5, ShardState.INTERRUPTED)
    assert '"state":"interrupted"' in record.to_json()
    back = ShardProgress.from_json(record.to_json())
    assert back == record and back.state is ShardState.INTERRUPTED and back.state == "interrupted"
    report = RunReport.from_dict({"run_id": "r", "input_uri": "i", "output_uri": "o", "status": "halted-budget"})
    assert report.status is RunStatus.HALTED_BUDGET and report.status.startswith("halted")
    with pytest.raises(ValueError):
        ShardProgress.from_dict({**record.to_dict(), "state": "sleeping"})
    entry = ManifestEntry("b", "k.pdf", "k.pdf", 3, "e", 1.0, attempt=2, replaces="old")
    failure = FailureRecord.of(entry, "s3-error", "first line\nsecond", shard=4, round=1, run_id="r")
    assert (failure.error_class, failure.retryable, failure.message, failure.attempt) == (ErrorKind.S3_ERROR, True, "first line", 2)
    assert failure.to_manifest_entry() == ManifestEntry("b", "k.pdf", "k.pdf", 3, "e", 1.0, attempt=3, replaces="old")
    assert json.loads(json.dumps({ErrorKind.CORRUPT: 1})) == {"corrupt": 1}


def test_a_parquet_inventory_reads_like_a_csv_one(s3: Any, bucket: str) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed: the Parquet inventory reader needs it")
    import datetime as dt

    import pyarrow.parquet as pq

    when = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    table = pa.table({"bucket": [bucket] * 3, "key": ["in/a bé.pdf", "in/gone.pdf", "out/x.pdf"], "size": [10, None, 3],
                      "last_modified_date": [when] * 3, "e_tag": ["e1", None, "e3"], "is_latest": [True, True, True],
                      "is_delete_marker": [False, True, False]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    s3.put_object(Bucket=bucket, Key="inv/data/p.parquet", Body=sink.getvalue())
    schema = ("message s3.inventory { required binary bucket (STRING); required binary key (STRING); optional int64 size; "
              "optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary e_tag (STRING); "
              "optional boolean is_latest; optional boolean is_delete_marker; }")
    manifest = {"sourceBucket": bucket, "destinationBucket": f"arn:aws:s3:::{bucket}", "fileFormat": "Parquet",
                "fileSchema": schema, "files": [{"key": "inv/data/p.parquet", "size": 1}]}
    s3.put_object(Bucket=bucket, Key="inv/2026-11-02T00-00Z/manifest.json", Body=json.dumps(manifest).encode())
    objects = list(iter_inventory(s3, f"s3://{bucket}/inv/2026-11-02T00-00Z/manifest.json", S3Uri(bucket, "in/")))
    assert [(o.key, o.size, o.etag, o.mtime) for o in objects] == [("in/a bé.pdf", 10, "e1", when.timestamp())]
