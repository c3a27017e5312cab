"""Reduce against record files it cannot trust: a line cut short or garbled, records of PDFs that were never
in the shard's manifest. Written by hand into the emulator (what a child killed mid-write, a bug or a
hostile child leaves), without running a worker."""

from __future__ import annotations

from typing import Any

from pdf2md import s3 as s3io
from pdf2md.contracts import FailureRecord, ManifestEntry, OutputMeta, RunLayout, S3Uri
from pdf2md.plan import write_manifest
from pdf2md.reduce import failures_of_run, reduce_round

OUT = "out/"


def _entry(bucket: str, name: str) -> ManifestEntry:
    return ManifestEntry(bucket=bucket, key=f"in/{name}", rel=name, size=100, etag="e" + name.replace(".", ""), mtime=1.0)


def _meta(entry: ManifestEntry) -> OutputMeta:
    return OutputMeta(source_uri=entry.uri, source_etag=entry.etag, output_uri=f"s3://{entry.bucket}/{OUT}{entry.rel}.md",
                      converter_version="t", backend="text", pages=2, seconds=0.5)


def _one_shard(s3: Any, bucket: str, names: list[str]) -> tuple[RunLayout, dict[str, ManifestEntry]]:
    layout = RunLayout(S3Uri(bucket, "runs/r/"))
    entries = {n: _entry(bucket, n) for n in names}
    plan = write_manifest(s3, layout, list(entries.values()), 2, 0)
    assert plan.array_size == 2
    return layout, entries


def _put_lines(s3: Any, bucket: str, key: str, lines: list[str]) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body="".join(lines).encode())


def _shard_names(s3: Any, bucket: str, layout: RunLayout, shard: int) -> list[str]:
    body = s3io.get_bytes(s3, bucket, f"{layout.shard_manifests_prefix(0)}shard-{shard:05d}-of-00002.jsonl")
    return [ManifestEntry.from_json(line).rel for line in body.decode().splitlines()]


def _failure(entry: ManifestEntry, error_class: str, shard: int) -> FailureRecord:
    return FailureRecord.of(entry, error_class, "x", shard=shard, round=0, run_id="r")


def test_a_truncated_failure_file_is_one_fault_and_the_rest_of_the_shard_counts(s3: Any, bucket: str) -> None:
    layout, entries = _one_shard(s3, bucket, ["a.pdf", "b.pdf", "c.pdf", "d.pdf", "e.pdf", "f.pdf"])
    mine = [entries[n] for n in _shard_names(s3, bucket, layout, 0)]
    a, b, c = mine
    _put_lines(s3, bucket, layout.results_key(0, 0, 1), [_meta(a).to_json() + "\n", '{"source_uri": "s3://x", "sou\n'])
    cut = _failure(c, "corrupt", 0).to_json()
    _put_lines(s3, bucket, layout.failures_key(0, 0, 1), [_failure(b, "corrupt", 0).to_json() + "\n", cut[: len(cut) // 2]])
    for shard in (1,):
        _put_lines(s3, bucket, layout.results_key(0, shard, 1), [])
        _put_lines(s3, bucket, layout.failures_key(0, shard, 1), [])

    summary = reduce_round(s3, layout, 0, f"s3://{bucket}/{OUT}", 2, rerun=True, run_id="r")
    assert summary.record_faults == 2, "one per unreadable line"
    assert summary.converted == 1 and summary.permanent_by_class == {"corrupt": 1}
    assert summary.retryable_by_class == {"interrupted": 1}, "the PDF of the cut line (no output) is retried"
    rerun = list(s3io.read_jsonl(s3, bucket, layout.manifest_key(1), ManifestEntry))
    assert [e.key for e in rerun] == [c.key]
    assert summary.skipped == 3, "shard 1 reported its three PDFs as done before"
    # The report's failures read the same files: no crash, the readable record is listed.
    assert [f.key for f in failures_of_run(s3, layout, 1)] == [b.key]


def test_failure_records_of_pdfs_outside_the_manifest_are_rejected(s3: Any, bucket: str) -> None:
    layout, entries = _one_shard(s3, bucket, ["a.pdf", "b.pdf"])
    (a,) = [entries[n] for n in _shard_names(s3, bucket, layout, 0)]
    foreign = ManifestEntry(bucket="someone-elses-bucket", key="secret/payroll.pdf", rel="payroll.pdf", size=1, etag="x")
    forged = FailureRecord.of(a, "interrupted", "x", shard=0, round=0, run_id="r")
    forged = FailureRecord.from_dict({**forged.to_dict(), "etag": "forged", "bucket": bucket})
    lines = [_failure(foreign, "interrupted", 0).to_json() + "\n", forged.to_json() + "\n"]
    _put_lines(s3, bucket, layout.failures_key(0, 0, 1), lines)
    _put_lines(s3, bucket, layout.results_key(0, 0, 1), [])
    _put_lines(s3, bucket, layout.failures_key(0, 1, 1), [])
    _put_lines(s3, bucket, layout.results_key(0, 1, 1), [])

    summary = reduce_round(s3, layout, 0, f"s3://{bucket}/{OUT}", 2, rerun=True, run_id="r")
    rerun = list(s3io.read_jsonl(s3, bucket, layout.manifest_key(1), ManifestEntry))
    assert [(e.bucket, e.key, e.etag, e.attempt) for e in rerun] == [(a.bucket, a.key, a.etag, 2)], \
        "the rerun is built from the manifest's entry, not from what the child wrote"
    assert summary.record_faults == 1 and summary.retryable_by_class == {"interrupted": 1}
