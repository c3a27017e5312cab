"""One real pdf2md_backfill run, shared by the status page, browser and CLI tests.

`airflow dags test` runs the DAG in a subprocess against the session's emulator (its Batch starts real
`pdf2md worker` processes) and the session's SQLite database, while `airflow api-server`, with the
project's plugin, serves the status page from the same database. Both start at once, so the
server's start-up overlaps the run. The child of round 0 holding the one scanned PDF (the only slow
one: OCR) is terminated once it is converting (a Spot reclaim), so the run has an interrupted shard
and a rerun round, which is live for the seconds that OCR takes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pdf2md import s3 as s3io
from pdf2md.contracts import ManifestEntry, RunLayout, ShardProgress, shard_of
from pdf2md.run_state import batch_job_name_prefix
from tests.conftest import REPO, upload

SCANNED = 1
GOOD = ("crazyones.pdf", "table_mislabeled_as_picture.pdf")
BROKEN = {"broken-truncated.pdf": "corrupt", "not-a-pdf.pdf": "not-pdf", "encrypted-asdfzxcv.pdf": "password-required"}
BUDGET_USD = 0.05
ARRAY_SIZE = 3
RUN_TIMEOUT_S = 150
SERVER_START_S = 90


@dataclass
class LiveRun:
    """The run under test: where it writes, how to reach the page, and its processes."""

    bucket: str
    runs_uri: str
    base_url: str
    dag_test: subprocess.Popen[bytes]
    server: subprocess.Popen[bytes]
    logs: Path
    run_id: str = ""
    reclaimed_shard: int | None = None
    reclaimed: threading.Event = field(default_factory=threading.Event)

    def wait_for_run_id(self, timeout_s: float = 60) -> str:
        """The Airflow run id, once `dags test` has created the run (its conf names our bucket)."""
        deadline = time.monotonic() + timeout_s
        while not self.run_id and time.monotonic() < deadline:
            self.run_id = _run_id_of(self.bucket) or ""
            self._check_alive(self.dag_test, "airflow dags test")
            time.sleep(0.3)
        assert self.run_id, f"no DAG run for {self.bucket} after {timeout_s} s; see {self.logs}"
        return self.run_id

    def wait_for_server(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            self._check_alive(self.server, "airflow api-server")
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"api-server not healthy after {SERVER_START_S} s; see {self.logs}")

    def wait_until_finished(self) -> None:
        """Wait for `dags test` to end the run (without polling: the machine has two cores)."""
        try:
            self.dag_test.wait(RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the DAG run did not finish in {RUN_TIMEOUT_S} s: {_tail(self.logs)}")

    def _check_alive(self, proc: subprocess.Popen[bytes], name: str) -> None:
        if proc.poll() not in (None, 0):
            raise AssertionError(f"{name} exited with {proc.returncode}: {_tail(self.logs)}")


def _run_id_of(bucket: str) -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        for run in session.scalars(select(DagRun).where(DagRun.dag_id == "pdf2md_backfill").order_by(DagRun.id.desc()).limit(20)):
            if bucket in json.dumps(run.conf or {}):
                return str(run.run_id)
    return None


def _tail(path: Path, chars: int = 4000) -> str:
    text = "".join(p.read_text(errors="replace")[-chars:] for p in sorted(path.glob("*.log")))
    return text[-chars:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _airflow_env() -> dict[str, str]:
    """The session's Airflow home and emulator, as a real deployment would run (no unit-test mode)."""
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__UNIT_TEST_MODE"}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__PARALLELISM": "4",
    })
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, env=_airflow_env(), stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, then SIGKILL to whatever is left of it (the API server's workers
    and a scheduler can outlive their parent)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def _reclaim_when_busy(s3: Any, batch: Any, run: LiveRun) -> None:
    """Spot reclaim, as a test can cause it: terminate the round-0 child that holds the scanned PDF
    once it is converting."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline and run.dag_test.poll() is None:
        if run.run_id:
            layout = RunLayout.for_run(run.runs_uri, run.run_id)
            if run.reclaimed_shard is None:
                run.reclaimed_shard = _shard_holding(s3, run.bucket, layout, "scan-0.pdf")
            elif _is_running(s3, run.bucket, layout.progress_key(0, run.reclaimed_shard)):
                listed = batch.list_jobs(jobQueue="pdf2md-spot", filters=[
                    {"name": "JOB_NAME", "values": [batch_job_name_prefix(run.run_id) + "-r0"]}])["jobSummaryList"]
                parent = next(j["jobId"] for j in listed if ":" not in j["jobId"])
                batch.terminate_job(jobId=f"{parent}:{run.reclaimed_shard}", reason="Spot reclaim (test)")
                run.reclaimed.set()
                return
        time.sleep(0.1)


def _is_running(s3: Any, bucket: str, key: str) -> bool:
    record = s3io.get_json(s3, bucket, key, ShardProgress)
    return record is not None and record.state == "running"


def _shard_holding(s3: Any, bucket: str, layout: RunLayout, name: str) -> int | None:
    """The child that converts `name`: entry i of the manifest goes to child i % array size."""
    entries = s3io.read_jsonl_if_exists(s3, bucket, layout.manifest_key(0), ManifestEntry)
    index = next((i for i, e in enumerate(entries) if e.key.endswith(name)), None)
    return None if index is None else shard_of(index, ARRAY_SIZE)


@pytest.fixture(scope="package")
def live_run(aws_endpoint: str, airflow_db: None) -> Iterator[LiveRun]:
    import uuid

    import boto3

    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    batch = boto3.client("batch", endpoint_url=aws_endpoint, region_name="us-east-1")
    bucket = f"ui-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    for i in range(SCANNED):
        upload(s3, bucket, f"in/scans/scan-{i}.pdf", "scanned-crazyones.pdf")
    for name in (*GOOD, *BROKEN):
        upload(s3, bucket, f"in/docs/{name}", name)
    logs = REPO / "test-artifacts" / "ui-logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    conf = {"input_uri": f"s3://{bucket}/in/", "output_uri": f"s3://{bucket}/out/", "runs_uri": f"s3://{bucket}/runs/",
            "array_size": ARRAY_SIZE, "poll_interval_s": 1, "backend": "auto", "budget_usd": BUDGET_USD}
    server = _start([sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
                    logs / "api-server.log")
    dag_test = _start([sys.executable, "-m", "airflow", "dags", "test", "pdf2md_backfill", "-c", json.dumps(conf)], logs / "dags-test.log")
    run = LiveRun(bucket, conf["runs_uri"], f"http://127.0.0.1:{port}", dag_test, server, logs)
    reclaimer = threading.Thread(target=_reclaim_when_busy, args=(s3, batch, run), daemon=True)
    reclaimer.start()
    try:
        run.wait_for_run_id()
        yield run
    finally:
        _stop(dag_test)
        _stop(server)


@pytest.fixture(scope="package")
def finished_run(live_run: LiveRun) -> LiveRun:
    """The same run once `dags test` has finished it."""
    live_run.wait_until_finished()
    return live_run


# --- `make airflow`: the launcher, as a newcomer starts it -------------------------------------


@dataclass
class LocalAirflow:
    """`python -m pdf2md.local_airflow` (what `make airflow` runs) on a free port with its own home."""

    proc: subprocess.Popen[bytes]
    base_url: str
    home: Path
    log: Path
    endpoint: str = ""

    def wait_until_up(self, timeout_s: float = 240) -> None:
        """Until the launcher prints the URL (emulator up, samples uploaded, Airflow healthy)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if not self.endpoint and (found := re.search(r"local AWS at (http://\S+):", text)):
                self.endpoint = found.group(1)
            if "Airflow is up:" in text:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"make airflow exited with {self.proc.returncode}: {text[-4000:]}")
            time.sleep(0.5)
        raise AssertionError(f"make airflow was not up after {timeout_s} s: {self.log.read_text()[-4000:]}")

    def processes(self) -> dict[int, str]:
        """Every live process it started, with its command line: its descendants, whatever session
        they moved to (Airflow's group, each Batch child's own)."""
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        found, frontier = {}, [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            for child in (c for c, p in parents.items() if p == pid):
                found[child] = _cmdline(child)
                frontier.append(child)
        return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def alive(pids: dict[int, str]) -> dict[int, str]:
    """Those of `pids` still running the same command (a pid may be reused by then)."""
    return {pid: cmd for pid, cmd in pids.items() if cmd and _cmdline(pid) == cmd}


@pytest.fixture(scope="module")
def local_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAirflow]:
    """The launcher in its own session (as a terminal would run it); stopped with SIGINT by the test,
    and by force here if the test did not get that far."""
    home = tmp_path_factory.mktemp("airflow-home")
    logs = REPO / "test-artifacts" / "ui-logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "make-airflow.log"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "PDF2MD_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pdf2md.local_airflow", "--port", str(port), "--home", str(home)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    launched = LocalAirflow(proc, f"http://localhost:{port}", home, log)
    started: dict[int, str] = {}
    try:
        launched.wait_until_up()
        yield launched
    finally:
        started = launched.processes()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pid in alive(started):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
