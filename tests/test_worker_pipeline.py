"""The worker's pipelined shard against the emulator: several converter processes, a stop mid-pipeline, and the
records that come out of it (every PDF once: converted with its output, or failed; nothing written twice)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import pytest

from pdf2md import s3 as s3io
from pdf2md import worker
from pdf2md.contracts import FailureRecord, JobSettings, OutputMeta, RunLayout, S3Uri, ShardProgress, output_key
from pdf2md.plan import plan_round
from tests.conftest import BROKEN_SAMPLES, GOOD_SAMPLES, upload


def _shard(s3: Any, bucket: str, n_good: int) -> tuple[list[str], JobSettings]:
    keys = []
    for i in range(n_good):
        sample = GOOD_SAMPLES[i % len(GOOD_SAMPLES)]
        keys.append(f"in/{i:02d}-{sample}")
        upload(s3, bucket, keys[-1], sample)
    for sample in BROKEN_SAMPLES:
        keys.append(f"in/broken/{sample}")
        upload(s3, bucket, keys[-1], sample)
    plan = plan_round(s3, RunLayout(S3Uri(bucket, "runs/r/")), f"s3://{bucket}/in/", f"s3://{bucket}/out/", requested_array_size=2)
    settings = JobSettings(manifest_uri=plan.manifest_uri, output_uri=f"s3://{bucket}/out/", run_uri=f"s3://{bucket}/runs/r/",
                           run_id="r", array_size=1, backend="text", pdf_timeout_s=60, jobs=3)
    return keys, settings


def _settled(s3: Any, bucket: str) -> tuple[list[OutputMeta], list[FailureRecord]]:
    layout = RunLayout(S3Uri(bucket, "runs/r/"))
    return (list(s3io.read_jsonl(s3, bucket, layout.results_key(0, 0, 1), OutputMeta)),
            list(s3io.read_jsonl(s3, bucket, layout.failures_key(0, 0, 1), FailureRecord)))


def _outputs(s3: Any, bucket: str) -> set[str]:
    return {o.key for o in s3io.iter_objects(s3, S3Uri(bucket, "out/")) if o.key.endswith(".md")}


def test_three_converter_processes_settle_every_pdf_once(s3: Any, bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    keys, settings = _shard(s3, bucket, n_good=9)
    with caplog.at_level(logging.INFO, logger="pdf2md.worker"):
        assert worker.run(settings, s3=s3) == worker.EXIT_DONE
    assert "3 converter process(es)" in caplog.text
    results, failures = _settled(s3, bucket)
    converted = Counter(r.source_uri.removeprefix(f"s3://{bucket}/") for r in results)
    assert set(converted) | {f.key for f in failures} == set(keys) and set(converted.values()) == {1}
    assert sorted((f.key, f.error_class) for f in failures) == [
        ("in/broken/broken-truncated.pdf", "corrupt"), ("in/broken/not-a-pdf.pdf", "not-pdf")]
    out = S3Uri(bucket, "out/")
    assert _outputs(s3, bucket) == {output_key(out, k.removeprefix("in/")) for k in converted}


def test_a_stop_mid_pipeline_keeps_finished_outputs_and_records_the_rest_interrupted(s3: Any, bucket: str) -> None:
    keys, settings = _shard(s3, bucket, n_good=24)
    stop = worker.StopFlag()

    def stop_at_first_output(params: dict[str, Any], **_: Any) -> None:
        # the stop arrives as the first Markdown is written, whatever the shard's pace (a watcher polling
        # the bucket could see it only once a fast shard had finished every PDF)
        if params["Key"].endswith(".md"):
            stop.set()

    s3.meta.events.register("before-parameter-build.s3.PutObject", stop_at_first_output)
    started = time.monotonic()
    assert worker.run(settings, s3=s3, stop=stop) == worker.EXIT_INTERRUPTED
    assert time.monotonic() - started < 120
    results, failures = _settled(s3, bucket)
    converted = [r.source_uri.removeprefix(f"s3://{bucket}/") for r in results]
    failed = [f.key for f in failures]
    assert sorted(converted + failed) == sorted(keys), "every PDF exactly once"
    interrupted = [f for f in failures if f.error_class == "interrupted"]
    assert interrupted and all(f.retryable for f in interrupted)
    out = S3Uri(bucket, "out/")
    assert _outputs(s3, bucket) == {output_key(out, k.removeprefix("in/")) for k in converted}, "recorded = written"
    progress = s3io.get_json(s3, bucket, RunLayout(S3Uri(bucket, "runs/r/")).progress_key(0, 0), ShardProgress)
    assert progress is not None and progress.state == "interrupted" and progress.converted == len(converted)
