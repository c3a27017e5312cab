"""Start-up faults: a missing or malformed passwords object, a bad job environment. Checked before anything
is submitted where the DAG can, and, where only the child finds them, recorded as a permanent
`config-fault` with the child's message instead of `interrupted`, rerun every round."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from pdf2md import s3 as s3io
from pdf2md import worker
from pdf2md.contracts import ENV_PDF_TIMEOUT_S, FailureRecord, JobSettings, RunLayout, S3Uri, is_retryable
from pdf2md.plan import plan_round
from pdf2md.reduce import reduce_round
from pdf2md.run_state import RunConfig
from tests.conftest import SAMPLES
from tests.test_run_state import PARAMS


def _shard(s3: Any, bucket: str, passwords_uri: str | None) -> JobSettings:
    for name in ("a.pdf", "b.pdf"):
        s3.put_object(Bucket=bucket, Key=f"in/{name}", Body=(SAMPLES / "crazyones.pdf").read_bytes())
    plan = plan_round(s3, RunLayout(S3Uri(bucket, "runs/r/")), f"s3://{bucket}/in/", f"s3://{bucket}/out/", 2, run_id="r")
    return JobSettings(manifest_uri=plan.manifest_uri, output_uri=f"s3://{bucket}/out/", run_uri=f"s3://{bucket}/runs/r/",
                       run_id="r", array_size=2, backend="text", pdf_timeout_s=60, passwords_uri=passwords_uri)


def _failures(s3: Any, bucket: str) -> list[FailureRecord]:
    return list(s3io.read_jsonl(s3, bucket, RunLayout(S3Uri(bucket, "runs/r/")).failures_key(0, 0, 1), FailureRecord))


@pytest.mark.parametrize("body", [None, b'{"not": "a list"}'], ids=["missing", "malformed"])
def test_a_child_that_cannot_read_its_passwords_records_a_permanent_config_fault(s3: Any, bucket: str, body: bytes | None) -> None:
    uri = f"s3://{bucket}/secrets/passwords.json"
    if body is not None:
        s3.put_object(Bucket=bucket, Key="secrets/passwords.json", Body=body)
    settings = _shard(s3, bucket, uri)
    assert worker.run(settings, s3=s3io.client()) == worker.EXIT_SHARD_FAULT

    failed = _failures(s3, bucket)
    assert len(failed) == 1 and {(f.error_class, f.retryable) for f in failed} == {("config-fault", False)}
    assert uri in failed[0].message, "the child's own message, naming what it could not use"
    assert not is_retryable("config-fault")
    worker.run(dataclasses.replace(settings, array_index=1), s3=s3io.client())
    summary = reduce_round(s3, RunLayout(S3Uri(bucket, "runs/r/")), 0, settings.output_uri, 2, rerun=True, run_id="r")
    assert summary.permanent_by_class == {"config-fault": 2} and summary.rerun_entries == 0
    # No failure markers: once the configuration is fixed, the next plan converts these PDFs.
    assert not list(s3io.iter_objects(s3, S3Uri(bucket, "out/_pdf2md/")))


def test_a_child_whose_environment_is_bad_records_a_config_fault_for_its_shard(s3: Any, bucket: str) -> None:
    settings = _shard(s3, bucket, None)
    env = {**settings.to_env(), ENV_PDF_TIMEOUT_S: "600.0", "AWS_BATCH_JOB_ARRAY_INDEX": "0"}
    saved = dict(os.environ)
    try:
        assert worker.main(env) == worker.EXIT_SHARD_FAULT
    finally:
        os.environ.clear()
        os.environ.update(saved)
    failed = _failures(s3, bucket)
    assert [(f.error_class, f.retryable) for f in failed] == [("config-fault", False)]
    assert ENV_PDF_TIMEOUT_S in failed[0].message


def _config(**overrides: Any) -> RunConfig:
    return dataclasses.replace(RunConfig.from_params("r", PARAMS), **overrides)


def test_preflight_names_a_passwords_object_that_is_missing_or_malformed(s3: Any, bucket: str) -> None:
    from pdf2md.run_state import preflight

    uri = f"s3://{bucket}/secrets/passwords.json"
    with pytest.raises(ValueError, match="passwords_uri.*cannot be read"):
        preflight(s3, _config(passwords_uri=uri))
    s3.put_object(Bucket=bucket, Key="secrets/passwords.json", Body=b"[1, 2]")
    with pytest.raises(ValueError, match="JSON list of strings"):
        preflight(s3, _config(passwords_uri=uri))
    s3.put_object(Bucket=bucket, Key="secrets/passwords.json", Body=b'["x"]')
    preflight(s3, _config(passwords_uri=uri))
    preflight(s3, _config())


def test_preflight_refuses_settings_the_children_could_not_read(s3: Any) -> None:
    from pdf2md.run_state import preflight

    with pytest.raises(ValueError, match=ENV_PDF_TIMEOUT_S):
        preflight(s3, _config(pdf_timeout_s=600.5))


def test_a_run_whose_children_hit_a_config_fault_is_red_and_says_so() -> None:
    from pdf2md.contracts import RoundSummary, RunStatus
    from pdf2md.report import build_report
    from tests.test_run_state import _state

    report = build_report(_state(), [RoundSummary(round=0, planned=5, converted=3, permanent_by_class={"config-fault": 2})],
                          0.0, 0.5, [], now=2000.0)
    assert report.status == RunStatus.FAILED and report.failed_by_class == {"config-fault": 2, "key-collision": 1}
    assert "configuration" in report.message
