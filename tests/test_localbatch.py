"""The local Batch executor: array children really run, statuses move as on AWS, parents fail with a child."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from pdf2md.batch import attempt_seconds, children, terminate, usage

SCRIPT = "import os, sys, time; i = int(os.environ['AWS_BATCH_JOB_ARRAY_INDEX']); {body}"


def _definition(batch: Any, body: str, **extra: Any) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"
    batch.register_job_definition(
        jobDefinitionName=name, type="container",
        containerProperties={"image": "local", "command": ["python", "-c", SCRIPT.format(body=body)],
                             "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]},
        **extra,
    )
    return name


def _wait(batch: Any, job_id: str, timeout: float = 60) -> tuple[dict[str, Any], set[str]]:
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        seen |= {c["status"] for c in children(batch, job_id)}
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return job, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_array_children_run_with_their_index_and_a_failed_child_fails_the_parent(batch: Any, s3: Any, bucket: str) -> None:
    body = (f"import boto3; boto3.client('s3').put_object(Bucket='{bucket}', Key=f'child-{{i}}', Body=os.environ['AWS_BATCH_JOB_ATTEMPT']);"
            " time.sleep(0.3); sys.exit(3 if i == 2 else 0)")
    job = batch.submit_job(jobName="array-test", jobQueue="pdf2md-spot", jobDefinition=_definition(batch, body),
                           arrayProperties={"size": 3})
    parent, seen = _wait(batch, job["jobId"])
    assert parent["status"] == "FAILED" and "1 of 3 child jobs failed" in parent["statusReason"]
    assert {"RUNNING", "SUCCEEDED", "FAILED"} <= seen
    kids = children(batch, job["jobId"])
    assert [k["status"] for k in kids] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]
    assert kids[2]["attempts"][-1]["container"]["exitCode"] == 3
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["child-0", "child-1", "child-2"]
    assert all(attempt_seconds(k) >= 0.3 for k in kids)
    assert usage(batch, job["jobId"]).failed == 1


def test_all_children_succeeding_make_the_parent_succeed(batch: Any) -> None:
    job = batch.submit_job(jobName="ok-test", jobQueue="pdf2md-spot", jobDefinition=_definition(batch, "pass"), arrayProperties={"size": 2})
    parent, _ = _wait(batch, job["jobId"])
    assert parent["status"] == "SUCCEEDED"


def test_terminate_sends_sigterm_and_a_terminated_parent_takes_its_children(batch: Any) -> None:
    body = "import signal; signal.signal(signal.SIGTERM, lambda *_: sys.exit(143)); time.sleep(60)"
    job = batch.submit_job(jobName="term-test", jobQueue="pdf2md-spot", jobDefinition=_definition(batch, body), arrayProperties={"size": 2})
    deadline = time.monotonic() + 30
    while not all(c["status"] == "RUNNING" for c in children(batch, job["jobId"])):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert terminate(batch, [job["jobId"]], "test says stop") == [job["jobId"]]
    parent, _ = _wait(batch, job["jobId"], timeout=20)
    assert parent["status"] == "FAILED"
    assert all(k["attempts"][-1]["container"]["exitCode"] == 143 for k in children(batch, job["jobId"]))


def test_retry_strategy_retries_host_failures_only_and_timeouts_stop_attempts(batch: Any) -> None:
    retry_all = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "7", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]}
    body = "sys.exit(7 if int(os.environ['AWS_BATCH_JOB_ATTEMPT']) < 3 else 0)"
    job = batch.submit_job(jobName="retry-test", jobQueue="pdf2md-spot",
                           jobDefinition=_definition(batch, body, retryStrategy=retry_all), arrayProperties={"size": 2})
    parent, _ = _wait(batch, job["jobId"])
    assert parent["status"] == "SUCCEEDED"
    assert [len(k["attempts"]) for k in children(batch, job["jobId"])] == [3, 3]

    slow = batch.submit_job(jobName="timeout-test", jobQueue="pdf2md-spot",
                            jobDefinition=_definition(batch, "time.sleep(60)", timeout={"attemptDurationSeconds": 1}),
                            arrayProperties={"size": 2})
    parent, _ = _wait(batch, slow["jobId"], timeout=45)
    assert parent["status"] == "FAILED"
    assert all("timeout" in k["attempts"][-1]["statusReason"] for k in children(batch, slow["jobId"]))


@pytest.mark.parametrize("size", [2, 5])
def test_describe_in_chunks_sees_every_child(batch: Any, size: int) -> None:
    job = batch.submit_job(jobName="chunk-test", jobQueue="pdf2md-spot", jobDefinition=_definition(batch, "pass"),
                           arrayProperties={"size": size})
    _wait(batch, job["jobId"])
    assert [k["jobId"] for k in children(batch, job["jobId"])] == [f"{job['jobId']}:{i}" for i in range(size)]


def test_moto_still_has_every_contact_point_the_executor_relies_on() -> None:
    """After a moto upgrade, this names what moved (and what the executor used it for) before anything else fails."""
    from pdf2md.localbatch import missing_contact_points

    missing = missing_contact_points()
    assert missing == [], "moto changed what pdf2md.localbatch.MotoJob relies on:\n  " + "\n  ".join(missing)


def test_a_moved_contact_point_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.batch.models import Job

    from pdf2md import localbatch

    monkeypatch.delattr(Job, "_mark_stopped")
    monkeypatch.setattr(localbatch, "CONTACT_POINTS", (*localbatch.CONTACT_POINTS,
                                                       localbatch.ContactPoint("job_gone", None, "a field moto dropped")))
    missing = localbatch.missing_contact_points()
    assert [m.split(" ")[0] for m in missing] == ["moto.batch.models.Job._mark_stopped", "moto.batch.models.Job.job_gone"]
    assert "sets SUCCEEDED/FAILED" in missing[0]
