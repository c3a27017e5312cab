"""A PDF that changes under a run: deleted between listing and conversion, or replaced while it converts.

The worker runs in this process against the emulator; the changes are made from the test's own client,
at the moment a botocore hook on the worker's client says the worker reached a given request.
"""

from __future__ import annotations

from typing import Any

from pdf2md import s3 as s3io
from pdf2md import worker
from pdf2md.contracts import FailureRecord, JobSettings, OutputMeta, RunLayout, S3Uri, failure_marker_key, is_retryable
from pdf2md.plan import plan_round
from tests.conftest import SAMPLES

IN, OUT = "in/", "out/"


def _plan(s3: Any, bucket: str, run_id: str) -> Any:
    layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
    return plan_round(s3, layout, f"s3://{bucket}/{IN}", f"s3://{bucket}/{OUT}", requested_array_size=2, run_id=run_id)


def _settings(bucket: str, manifest_uri: str, run_id: str, attempt: int = 1, rnd: int = 0) -> JobSettings:
    return JobSettings(manifest_uri=manifest_uri, output_uri=f"s3://{bucket}/{OUT}", run_uri=f"s3://{bucket}/runs/{run_id}/",
                       run_id=run_id, array_size=1, attempt=attempt, round=rnd, backend="text", pdf_timeout_s=60)


def _records(s3: Any, bucket: str, run_id: str, attempt: int = 1, rnd: int = 0) -> tuple[list[OutputMeta], list[FailureRecord]]:
    layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
    return (list(s3io.read_jsonl(s3, bucket, layout.results_key(rnd, 0, attempt), OutputMeta)),
            list(s3io.read_jsonl(s3, bucket, layout.failures_key(rnd, 0, attempt), FailureRecord)))


def _put(s3: Any, bucket: str, key: str, sample: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=(SAMPLES / sample).read_bytes())


def test_a_pdf_deleted_after_listing_is_gone_for_good_not_retried(s3: Any, bucket: str) -> None:
    _put(s3, bucket, "in/kept.pdf", "crazyones.pdf")
    _put(s3, bucket, "in/deleted.pdf", "crazyones.pdf")
    plan = _plan(s3, bucket, "r1")
    s3.delete_object(Bucket=bucket, Key="in/deleted.pdf")
    assert worker.run(_settings(bucket, plan.manifest_uri, "r1"), s3=s3io.client()) == worker.EXIT_DONE

    converted, failed = _records(s3, bucket, "r1")
    assert [m.source_uri for m in converted] == [f"s3://{bucket}/in/kept.pdf"]
    assert [(f.key, f.error_class, f.retryable) for f in failed] == [("in/deleted.pdf", "gone", False)]
    assert not is_retryable("gone")
    # Permanent: a marker beside the outputs, so a later plan skips it (unless a newer PDF comes back).
    marker = failure_marker_key(S3Uri(bucket, OUT), "deleted.pdf")
    assert s3io.head(s3, bucket, marker) is not None
