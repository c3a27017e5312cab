"""A local AWS: moto server on loopback, whose Batch really runs each job as a local process.

moto's own Batch either needs Docker or (simple mode) runs nothing. This module gives its Job model a
`run` that executes the job definition's command once per array child with AWS_BATCH_JOB_ARRAY_INDEX
and AWS_BATCH_JOB_ATTEMPT set, walks the statuses RUNNABLE → STARTING → RUNNING → SUCCEEDED/FAILED,
honours terminate_job (SIGTERM, then SIGKILL after the stop timeout), attemptDurationSeconds and the
definition's retryStrategy, and fails an array parent when any child failed, as AWS does. Code under
test only sees AWS_ENDPOINT_URL.

moto has no public API for any of this: everything the executor reads or writes of moto's Batch model
goes through `MotoJob`, and `CONTACT_POINTS` lists each member it relies on and why. When moto is
upgraded, tests/test_localbatch.py checks them first and names any that moved.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from pdf2md.contracts import DEFAULT_JOB_DEFINITION, DEFAULT_JOB_QUEUE

if TYPE_CHECKING:
    from moto.batch.models import Job

log = logging.getLogger(__name__)

REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.1


# --- moto's internals: every contact point, in one place --------------------------------------


@dataclass(frozen=True)
class ContactPoint:
    """A member of moto's `Job` model the executor relies on: `params` for a method, None for data."""

    name: str
    params: tuple[str, ...] | None
    relies_on: str


CONTACT_POINTS = (
    ContactPoint("run", ("self",), "moto's job thread calls Job.run() once per job, parent and each child; "
                                   "local_aws replaces it with the executor"),
    ContactPoint("job_id", None, "a child's id is '<parent id>:<index>'"),
    ContactPoint("status", None, "a settable property: what describe_jobs reports"),
    ContactPoint("job_queue", None, "the queue model, whose .name is AWS_BATCH_JQ_NAME"),
    ContactPoint("job_definition", None, "the definition model: .name and .retry_strategy (attempts, evaluateOnExit)"),
    ContactPoint("array_properties", None, "a child's dict holds its 'index'"),
    ContactPoint("attempts", None, "the list describe_jobs reports as attempts; appended to per attempt"),
    ContactPoint("exit_code", None, "the job's last exit code"),
    ContactPoint("job_started_at", None, "a datetime: describe_jobs' startedAt"),
    ContactPoint("stop", None, "True once terminate_job (or Job.terminate) was called"),
    ContactPoint("job_stopped", None, "True once the job reached SUCCEEDED or FAILED"),
    ContactPoint("job_stopped_reason", None, "describe_jobs' statusReason"),
    ContactPoint("backend", None, "the BatchBackend, whose get_job_by_id(id) finds a child's parent"),
    ContactPoint("_child_jobs", None, "an array parent's children (None for other jobs)"),
    ContactPoint("terminate", ("self", "reason"), "marks the job to stop with a reason, as terminate_job does"),
    ContactPoint("_mark_stopped", ("self", "success"), "sets SUCCEEDED/FAILED, job_stopped and the stop time"),
    ContactPoint("_get_attempt_duration", ("self",), "attemptDurationSeconds of the submit or the definition, or None"),
    ContactPoint("_get_container_property", ("self", "p", "default"), "the definition's container property with the "
                                                                      "submit's overrides applied"),
    ContactPoint("_add_parameters_to_command", ("self", "command"), "Ref::name substitution in the command"),
)


def missing_contact_points() -> list[str]:
    """The contact points moto's installed version no longer has as relied on, each with what it was for.

    Methods and properties are looked up on the class with their parameter names; data attributes
    among the names moto's `Job.__init__` assigns."""
    import inspect

    from moto.batch.models import Job

    assigned = set(Job.__init__.__code__.co_names)
    missing = []
    for point in CONTACT_POINTS:
        member = inspect.getattr_static(Job, point.name, None)
        if point.params is None:
            found = member is not None or point.name in assigned
        else:
            found = callable(member) and tuple(inspect.signature(member).parameters)[: len(point.params)] == point.params
        if not found:
            missing.append(f"moto.batch.models.Job.{point.name} ({point.relies_on})")
    return missing


class MotoJob:
    """One of moto's Batch jobs, as the executor reads and moves it; the only code touching moto's model."""

    def __init__(self, job: Job) -> None:
        self._job = job

    @property
    def job_id(self) -> str:
        return self._job.job_id

    @property
    def status(self) -> str | None:
        return self._job.status

    @status.setter
    def status(self, value: str) -> None:
        self._job.status = value

    @property
    def queue_name(self) -> str:
        return self._job.job_queue.name

    @property
    def definition_name(self) -> str:
        return self._job.job_definition.name

    @property
    def retry_strategy(self) -> dict[str, Any]:
        return dict(self._job.job_definition.retry_strategy or {})

    @property
    def array_index(self) -> int | None:
        index = self._job.array_properties.get("index")
        return None if index is None else int(index)

    @property
    def attempt_duration_s(self) -> int | None:
        return self._job._get_attempt_duration()

    def command(self) -> list[str]:
        return list(self._job._add_parameters_to_command(self._job._get_container_property("command", [])))

    def environment(self) -> dict[str, str]:
        return {e["name"]: e["value"] for e in self._job._get_container_property("environment", [])}

    @property
    def stop_requested(self) -> bool:
        return bool(self._job.stop)

    @property
    def stop_reason(self) -> str | None:
        return self._job.job_stopped_reason

    @property
    def stopped(self) -> bool:
        return bool(self._job.job_stopped)

    def terminate(self, reason: str) -> None:
        self._job.terminate(reason)

    def start_attempt(self) -> None:
        self._job.job_started_at = datetime.now()

    def record_attempt(self, exit_code: int, attempt: dict[str, Any]) -> None:
        self._job.exit_code = exit_code
        self._job.attempts.append(attempt)

    def finish(self, success: bool, reason: str | None = None) -> None:
        """SUCCEEDED or FAILED; `reason`, when given, becomes the statusReason."""
        if reason:
            self._job.job_stopped_reason = reason
        self._job._mark_stopped(success=success)

    def parent(self) -> MotoJob | None:
        """An array child's parent; None for any other job."""
        if ":" not in self.job_id:
            return None
        parent = self._job.backend.get_job_by_id(self.job_id.split(":", 1)[0])
        return MotoJob(parent) if parent is not None else None

    def children(self) -> list[MotoJob]:
        return [MotoJob(child) for child in self._job._child_jobs or []]


@contextmanager
def running_jobs_with(run: Callable[[MotoJob], None]) -> Iterator[None]:
    """moto's Job.run replaced by `run` while the block lasts (moto calls it on the job's own thread)."""
    from moto.batch import models as batch_models

    original = batch_models.Job.run

    @functools.wraps(original)  # keeps moto's signature visible to missing_contact_points while replaced
    def replacement(job: Job) -> None:
        run(MotoJob(job))

    setattr(batch_models.Job, "run", replacement)  # noqa: B010 - a method replaced on moto's class, not an attribute of ours
    try:
        yield
    finally:
        setattr(batch_models.Job, "run", original)  # noqa: B010


# --- the executor -----------------------------------------------------------------------------


class LocalExecutor:
    """Runs moto Batch jobs as local processes, at most `slots` children at a time."""

    def __init__(self, endpoint_url: str, slots: int, log_dir: Path, stop_timeout_s: float = STOP_TIMEOUT_S) -> None:
        self.endpoint_url = endpoint_url
        self.log_dir = log_dir
        self.stop_timeout_s = stop_timeout_s
        self._slots = threading.Semaphore(slots)
        self._lock = threading.Lock()

    def run(self, job: MotoJob) -> None:
        """moto calls this on the job's own thread (it replaces Job.run)."""
        try:
            self._run(job)
        except Exception:  # noqa: BLE001 - a bug here must fail the job, not kill moto's thread silently
            log.exception("local Batch executor failed on job %s", job.job_id)
            job.finish(success=False, reason=job.stop_reason or "local executor error")
        finally:
            self._settle_parent(job)

    def _run(self, job: MotoJob) -> None:
        job.status = "PENDING"
        job.status = "RUNNABLE"
        attempts = int(job.retry_strategy.get("attempts") or 1)
        for attempt in range(1, attempts + 1):
            with self._slots:
                if self._stopping(job):
                    job.finish(success=False)
                    return
                exit_code, reason = self._attempt(job, attempt)
            if exit_code == 0:
                job.finish(success=True)
                return
            if attempt == attempts or not self._should_retry(job, exit_code, reason):
                job.finish(success=False, reason=job.stop_reason or reason)
                return
            log.info("job %s attempt %d failed (%s): retrying", job.job_id, attempt, reason)
            job.status = "RUNNABLE"

    def _attempt(self, job: MotoJob, attempt: int) -> tuple[int, str]:
        job.status = "STARTING"
        job.start_attempt()
        job.status = "RUNNING"
        started_ms = int(time.time() * 1000)
        log_path = self.log_dir / f"{job.job_id.replace(':', '-')}.attempt-{attempt}.log"
        with log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                self._command(job), env=self._env(job, attempt), stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            exit_code, reason = self._wait(job, proc)
        job.record_attempt(exit_code, {
            "container": {"exitCode": exit_code, "logStreamName": str(log_path), "reason": reason},
            "startedAt": started_ms,
            "stoppedAt": int(time.time() * 1000),
            "statusReason": reason,
        })
        return exit_code, reason

    def _wait(self, job: MotoJob, proc: subprocess.Popen[bytes]) -> tuple[int, str]:
        duration = job.attempt_duration_s
        deadline = time.monotonic() + duration if duration else None
        reason = "Essential container in task exited"
        while proc.poll() is None:
            if self._stopping(job):
                reason = job.stop_reason or "Terminated by user"
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

    def _stopping(self, job: MotoJob) -> bool:
        parent = job.parent()
        if parent is not None and parent.stop_requested and not job.stop_requested:
            job.terminate(parent.stop_reason or "parent job terminated")
        return job.stop_requested

    def _command(self, job: MotoJob) -> list[str]:
        command = job.command()
        if not command:
            raise ValueError(f"job definition {job.definition_name} has no command")
        return command

    def _env(self, job: MotoJob, attempt: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(job.environment())
        env.update(FAKE_CREDENTIALS)
        env["AWS_ENDPOINT_URL"] = self.endpoint_url
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["AWS_BATCH_JOB_ID"] = job.job_id
        env["AWS_BATCH_JOB_ATTEMPT"] = str(attempt)
        env["AWS_BATCH_JQ_NAME"] = job.queue_name
        if job.array_index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.array_index)
        return env

    @staticmethod
    def _should_retry(job: MotoJob, exit_code: int, reason: str) -> bool:
        """The definition's evaluateOnExit rules, first match wins; no rules means retry."""
        rules = job.retry_strategy.get("evaluateOnExit") or []
        for rule in rules:
            checks = [
                ("onExitCode", str(exit_code)),
                ("onReason", reason),
                ("onStatusReason", reason),
            ]
            if all(fnmatch.fnmatchcase(value, rule[name]) for name, value in checks if name in rule):
                return str(rule.get("action", "")).upper() == "RETRY"
        return not rules

    def _settle_parent(self, job: MotoJob) -> None:
        """An array parent ends when its last child does: FAILED if any child failed."""
        parent = job.parent()
        if parent is None:
            return
        with self._lock:
            children = parent.children()
            if parent.stopped or not all(c.stopped for c in children):
                if not parent.stopped and parent.status in ("SUBMITTED", None):
                    parent.status = "PENDING"
                return
            failed = sum(c.status == "FAILED" for c in children)
            parent.finish(success=not failed, reason=f"{failed} of {len(children)} child jobs failed" if failed else None)


@contextmanager
def local_aws(
    slots: int | None = None, log_dir: Path | None = None, stop_timeout_s: float = STOP_TIMEOUT_S, port: int = 0
) -> Iterator[str]:
    """Start moto on a free loopback port with the local Batch executor; yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with tempfile.TemporaryDirectory(prefix="pdf2md-batch-logs-") as tmp:
        executor = LocalExecutor(endpoint, slots or max(os.cpu_count() or 2, 2), log_dir or Path(tmp), stop_timeout_s)
        try:
            with running_jobs_with(executor.run):
                yield endpoint
        finally:
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
