"""The array child against the emulator: sharding, idempotency, conditional writes, Spot reclaim."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pdf2md import s3 as s3io
from pdf2md.contracts import FailureRecord, JobSettings, OutputMeta, RunLayout, S3Uri, ShardProgress, output_key
from pdf2md.plan import plan_round
from tests.conftest import BROKEN_SAMPLES, GOOD_SAMPLES, upload

REPO = Path(__file__).resolve().parents[1]


def _fill(s3: Any, bucket: str, n_good: int, n_scanned: int = 0) -> list[str]:
    """n_good good PDFs (the samples, repeated under other names), scans, and every broken sample."""
    keys = [f"in/scans/{i:02d}.pdf" for i in range(n_scanned)]
    for key in keys:
        upload(s3, bucket, key, "scanned-crazyones.pdf")
    for i in range(n_good):
        sample = GOOD_SAMPLES[i % len(GOOD_SAMPLES)]
        key = f"in/batch-{i % 3}/{i:02d}-{sample}"
        upload(s3, bucket, key, sample)
        keys.append(key)
    for sample in BROKEN_SAMPLES:
        upload(s3, bucket, f"in/broken/{sample}", sample)
        keys.append(f"in/broken/{sample}")
    upload(s3, bucket, "in/readme.txt", "not-a-pdf.pdf")
    return keys


def _settings(
    bucket: str, plan_uri: str, size: int, index: int, attempt: int = 1, run_id: str = "run-1", backend: str = "text"
) -> JobSettings:
    return JobSettings(
        manifest_uri=plan_uri, output_uri=f"s3://{bucket}/out/", run_uri=f"s3://{bucket}/runs/{run_id}/",
        run_id=run_id, array_size=size, array_index=index, attempt=attempt, backend=backend, pdf_timeout_s=60,
    )


def _worker_env(settings: JobSettings) -> dict[str, str]:
    env = {**os.environ, **settings.to_env(), "AWS_BATCH_JOB_ARRAY_INDEX": str(settings.array_index),
           "AWS_BATCH_JOB_ATTEMPT": str(settings.attempt)}
    return env


def _run_worker(settings: JobSettings) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pdf2md.cli", "worker"], env=_worker_env(settings),
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def _wait_until_converting(s3: Any, bucket: str, layout: RunLayout) -> None:
    """The shard has written its first progress record: it is past start-up, into the PDFs."""
    deadline = time.monotonic() + 60
    while s3io.get_json(s3, bucket, layout.progress_key(0, 0), ShardProgress) is None:
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)


def _outputs(s3: Any, bucket: str) -> list[str]:
    return sorted(o.key for o in s3io.iter_objects(s3, S3Uri(bucket, "out/")) if o.key.endswith(".md"))


def _records(s3: Any, bucket: str, prefix: str, cls: type) -> list[Any]:
    records: list[Any] = []
    for obj in s3io.iter_objects(s3, S3Uri(bucket, prefix)):
        records.extend(s3io.read_jsonl(s3, bucket, obj.key, cls))
    return records


def test_three_children_convert_each_pdf_once_and_a_second_run_converts_nothing(s3: Any, bucket: str) -> None:
    keys = _fill(s3, bucket, n_good=18)
    layout = RunLayout(S3Uri(bucket, "runs/run-1/"))
    plan = plan_round(s3, layout, f"s3://{bucket}/in/", f"s3://{bucket}/out/", requested_array_size=3)
    assert plan.entries == len(keys) == 20 and plan.array_size == 3

    procs = [subprocess.Popen([sys.executable, "-m", "pdf2md.cli", "worker"], env=_worker_env(_settings(bucket, plan.manifest_uri, 3, i)),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(3)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs

    failures = _records(s3, bucket, layout.failures_prefix(0), FailureRecord)
    results = _records(s3, bucket, layout.results_prefix(0), OutputMeta)
    out = S3Uri(bucket, "out/")
    converted = {r.source_uri.removeprefix(f"s3://{bucket}/") for r in results}
    failed = {f.key for f in failures}
    assert converted | failed == set(keys) and not converted & failed
    assert {(f.key.rsplit("/", 1)[-1], f.error_class, f.retryable) for f in failures} == {
        ("broken-truncated.pdf", "corrupt", False), ("not-a-pdf.pdf", "not-pdf", False)}
    assert _outputs(s3, bucket) == sorted(output_key(out, k.removeprefix("in/")) for k in converted)
    head = s3.head_object(Bucket=bucket, Key=output_key(out, "batch-0/00-crazyones.pdf"))
    assert head["Metadata"]["source-etag"] and head["Metadata"]["backend"] == "text"
    body = s3.get_object(Bucket=bucket, Key=output_key(out, "batch-0/00-crazyones.pdf"))["Body"].read().decode()
    assert "crazy ones" in body
    progress = [s3io.get_json(s3, bucket, layout.progress_key(0, i), ShardProgress) for i in range(3)]
    assert all(p is not None and p.state == "done" for p in progress)
    assert sum(p.converted for p in progress if p) == len(converted)

    second = RunLayout(S3Uri(bucket, "runs/run-2/"))
    replan = plan_round(s3, second, f"s3://{bucket}/in/", f"s3://{bucket}/out/", requested_array_size=3)
    assert (replan.entries, replan.skipped, replan.known_failures) == (0, 18, 2)
    # Even handed the full first manifest again, a child converts nothing that is up to date.
    rerun = _run_worker(_settings(bucket, plan.manifest_uri, 3, 0, run_id="run-3"))
    assert rerun.returncode == 0, rerun.stderr
    again = _records(s3, bucket, "runs/run-3/round-000/results/", OutputMeta)
    assert again == []
    progress3 = s3io.get_json(s3, bucket, RunLayout(S3Uri(bucket, "runs/run-3/")).progress_key(0, 0), ShardProgress)
    assert progress3 is not None and progress3.skipped == progress[0].converted


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigterm_mid_shard_then_rerun_loses_nothing_and_duplicates_nothing(s3: Any, bucket: str, seed: int) -> None:
    keys = _fill(s3, bucket, n_good=12, n_scanned=2)
    good = [k for k in keys if "/broken/" not in k]
    layout = RunLayout(S3Uri(bucket, "runs/run-1/"))
    plan = plan_round(s3, layout, f"s3://{bucket}/in/", f"s3://{bucket}/out/", requested_array_size=2)
    first = _settings(bucket, plan.manifest_uri, 1, 0, backend="auto")
    proc = subprocess.Popen([sys.executable, "-m", "pdf2md.cli", "worker"], env=_worker_env(first), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_until_converting(s3, bucket, layout)
    time.sleep(random.Random(seed).uniform(0.0, 2.0))
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert time.monotonic() - sent < 30, "the worker must exit within 30 s of SIGTERM"
    assert proc.returncode == 143, output

    attempt1 = list(s3io.read_jsonl(s3, bucket, layout.failures_key(0, 0, 1), FailureRecord))
    converted1 = list(s3io.read_jsonl(s3, bucket, layout.results_key(0, 0, 1), OutputMeta))
    assert any(f.error_class == "interrupted" and f.retryable for f in attempt1)
    assert s3io.get_json(s3, bucket, layout.progress_key(0, 0), ShardProgress).state == "interrupted"
    rerun = _run_worker(_settings(bucket, plan.manifest_uri, first.array_size, 0, attempt=2, backend="auto"))
    assert rerun.returncode == 0, rerun.stderr
    converted2 = list(s3io.read_jsonl(s3, bucket, layout.results_key(0, 0, 2), OutputMeta))
    attempt2 = list(s3io.read_jsonl(s3, bucket, layout.failures_key(0, 0, 2), FailureRecord))

    mine = set(keys)
    converted = Counter(m.source_uri for m in converted1 + converted2)
    assert all(n == 1 for n in converted.values()), "a PDF was converted twice"
    assert {f.error_class for f in attempt2} <= {"corrupt", "not-pdf"}
    assert {u.removeprefix(f"s3://{bucket}/") for u in converted} | {f.key for f in attempt2} == mine
    out = S3Uri(bucket, "out/")
    expected = sorted(output_key(out, k.removeprefix("in/")) for k in good if k in mine)
    assert _outputs(s3, bucket) == expected
