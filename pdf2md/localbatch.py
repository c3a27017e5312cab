"""A local AWS: moto server on loopback, whose Batch really runs each job as a local process.

moto's own Batch either needs Docker or (simple mode) runs nothing. This module gives its Job model a
`run` that executes the job definition's command once per array child with AWS_BATCH_JOB_ARRAY_INDEX
and AWS_BATCH_JOB_ATTEMPT set, walks the statuses RUNNABLE → STARTING → RUNNING → SUCCEEDED/FAILED,
honours terminate_job (SIGTERM, then SIGKILL after the stop timeout), attemptDurationSeconds and the
definition's retryStrategy, and fails an array parent when any child failed, as AWS does. Code under
test only sees AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from pdf2md.contracts import DEFAULT_JOB_DEFINITION, DEFAULT_JOB_QUEUE

log = logging.getLogger(__name__)

REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.1


class LocalExecutor:
    """Runs moto Batch jobs as local processes, at most `slots` children at a time."""

    def __init__(self, endpoint_url: str, slots: int, log_dir: Path, stop_timeout_s: float = STOP_TIMEOUT_S) -> None:
        self.endpoint_url = endpoint_url
        self.log_dir = log_dir
        self.stop_timeout_s = stop_timeout_s
        self._slots = threading.Semaphore(slots)
        self._lock = threading.Lock()

    def run(self, job: Any) -> None:
        """moto calls this on the job's own thread (it replaces Job.run)."""
        try:
            self._run(job)
        except Exception:  # noqa: BLE001 - a bug here must fail the job, not kill moto's thread silently
            log.exception("local Batch executor failed on job %s", job.job_id)
            job.status_reason = "local executor error"
            job._mark_stopped(success=False)
        finally:
            self._settle_parent(job)

    def _run(self, job: Any) -> None:
        job.status = "PENDING"
        job.status = "RUNNABLE"
        attempts = int((job.job_definition.retry_strategy or {}).get("attempts") or 1)
        for attempt in range(1, attempts + 1):
            with self._slots:
                if self._stopping(job):
                    job._mark_stopped(success=False)
                    return
                exit_code, reason = self._attempt(job, attempt)
            if exit_code == 0:
                job._mark_stopped(success=True)
                return
            if attempt == attempts or not self._should_retry(job, exit_code, reason):
                job.job_stopped_reason = job.job_stopped_reason or reason
                job._mark_stopped(success=False)
                return
            log.info("job %s attempt %d failed (%s): retrying", job.job_id, attempt, reason)
            job.status = "RUNNABLE"

    def _attempt(self, job: Any, attempt: int) -> tuple[int, str]:
        job.status = "STARTING"
        job.job_started_at = datetime.now()
        job.status = "RUNNING"
        started_ms = int(time.time() * 1000)
        log_path = self.log_dir / f"{job.job_id.replace(':', '-')}.attempt-{attempt}.log"
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                self._command(job), env=self._env(job, attempt), stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            exit_code, reason = self._wait(job, proc)
        job.exit_code = exit_code
        job.attempts.append({
            "container": {"exitCode": exit_code, "logStreamName": str(log_path), "reason": reason},
            "startedAt": started_ms,
            "stoppedAt": int(time.time() * 1000),
            "statusReason": reason,
        })
        return exit_code, reason

    def _wait(self, job: Any, proc: subprocess.Popen[bytes]) -> tuple[int, str]:
        duration = job._get_attempt_duration()
        deadline = time.monotonic() + duration if duration else None
        reason = "Essential container in task exited"
        while proc.poll() is None:
            if self._stopping(job):
                reason = job.job_stopped_reason or "Terminated by user"
                self._stop(proc)
                break
            if deadline and time.monotonic() > deadline:
                reason = "Job attempt duration exceeded timeout"
                self._stop(proc)
                break
            time.sleep(_POLL_S)
        return proc.wait(), reason

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        """What ECS does to a stopped task: SIGTERM to the container's main process, then SIGKILL to
        everything in it after the stop timeout."""
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _stopping(self, job: Any) -> bool:
        parent = self._parent(job)
        if parent is not None and parent.stop and not job.stop:
            job.terminate(parent.job_stopped_reason or "parent job terminated")
        return bool(job.stop)

    def _command(self, job: Any) -> list[str]:
        command = job._add_parameters_to_command(job._get_container_property("command", []))
        if not command:
            raise ValueError(f"job definition {job.job_definition.name} has no command")
        return list(command)

    def _env(self, job: Any, attempt: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({e["name"]: e["value"] for e in job._get_container_property("environment", [])})
        env.update(FAKE_CREDENTIALS)
        env["AWS_ENDPOINT_URL"] = self.endpoint_url
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["AWS_BATCH_JOB_ID"] = job.job_id
        env["AWS_BATCH_JOB_ATTEMPT"] = str(attempt)
        env["AWS_BATCH_JQ_NAME"] = job.job_queue.name
        if "index" in job.array_properties:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.array_properties["index"])
        return env

    @staticmethod
    def _should_retry(job: Any, exit_code: int, reason: str) -> bool:
        """The definition's evaluateOnExit rules, first match wins; no rules means retry."""
        rules = (job.job_definition.retry_strategy or {}).get("evaluateOnExit") or []
        for rule in rules:
            checks = [
                ("onExitCode", str(exit_code)),
                ("onReason", reason),
                ("onStatusReason", reason),
            ]
            if all(fnmatch.fnmatchcase(value, rule[name]) for name, value in checks if name in rule):
                return str(rule.get("action", "")).upper() == "RETRY"
        return not rules

    def _parent(self, job: Any) -> Any:
        if ":" not in job.job_id:
            return None
        return job.backend._jobs.get(job.job_id.split(":", 1)[0])

    def _settle_parent(self, job: Any) -> None:
        """An array parent ends when its last child does: FAILED if any child failed."""
        parent = self._parent(job)
        if parent is None:
            return
        with self._lock:
            children = parent._child_jobs or []
            if parent.job_stopped or not all(c.job_stopped for c in children):
                if not parent.job_stopped and parent.status in ("SUBMITTED", None):
                    parent.status = "PENDING"
                return
            failed = sum(c.status == "FAILED" for c in children)
            if failed:
                parent.job_stopped_reason = f"{failed} of {len(children)} child jobs failed"
            parent._mark_stopped(success=not failed)


@contextmanager
def local_aws(
    slots: int | None = None, log_dir: Path | None = None, stop_timeout_s: float = STOP_TIMEOUT_S, port: int = 0
) -> Iterator[str]:
    """Start moto on a free loopback port with the local Batch executor; yields the endpoint URL."""
    from moto.batch import models as batch_models
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with tempfile.TemporaryDirectory(prefix="pdf2md-batch-logs-") as tmp:
        executor = LocalExecutor(endpoint, slots or max(os.cpu_count() or 2, 2), log_dir or Path(tmp), stop_timeout_s)
        original = batch_models.Job.run
        batch_models.Job.run = lambda job: executor.run(job)
        try:
            yield endpoint
        finally:
            batch_models.Job.run = original
            server.stop()


def aws_env(endpoint_url: str) -> dict[str, str]:
    """The environment that points boto3 and Airflow's aws_default connection at the emulator."""
    connection = {"conn_type": "aws", "extra": {"endpoint_url": endpoint_url, "region_name": REGION}}
    return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint_url, "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection)}


def provision(
    endpoint_url: str,
    buckets: tuple[str, ...],
    queue: str = DEFAULT_JOB_QUEUE,
    definition: str = DEFAULT_JOB_DEFINITION,
    command: tuple[str, ...] = ("pdf2md", "worker"),
    environment: dict[str, str] | None = None,
    attempt_duration_s: int = 3600,
) -> None:
    """Create what terraform creates, in the emulator: buckets, a compute environment, queue, definition."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket)
    iam = session.client("iam", endpoint_url=endpoint_url)
    try:
        role = iam.get_role(RoleName="pdf2md-batch-service")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="pdf2md-batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = session.client("batch", endpoint_url=endpoint_url)
    ce = batch.create_compute_environment(computeEnvironmentName="pdf2md-local", type="UNMANAGED", serviceRole=role)
    batch.create_job_queue(
        jobQueueName=queue, state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    batch.register_job_definition(
        jobDefinitionName=definition,
        type="container",
        containerProperties={
            "image": "pdf2md-local",
            "command": list(command),
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
        },
        retryStrategy={"attempts": 2, "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ]},
        timeout={"attemptDurationSeconds": attempt_duration_s},
    )


def serve_forever(port: int = 0) -> None:
    """`pdf2md emulator`: a long-running local AWS for `airflow standalone` on a laptop."""
    from pdf2md.contracts import DEFAULT_RUNS_PREFIX

    with local_aws(port=port) as endpoint:
        provision(endpoint, buckets=("pdf2md-input", "pdf2md-output"))
        log.info("local AWS at %s (buckets pdf2md-input, pdf2md-output; runs under s3://pdf2md-output/%s)", endpoint, DEFAULT_RUNS_PREFIX)
        print(f"export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={REGION}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return
