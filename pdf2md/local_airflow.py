"""`make airflow`: the real Airflow UI on this machine, against the local AWS, in one command.

This process holds the local AWS (moto on a free loopback port; its Batch runs each array child as a
`pdf2md worker` process), creates what terraform creates and uploads the sample PDFs; then it runs
`airflow standalone` (API server and UI, scheduler, DAG processor, triggerer) with the project's DAGs,
its plugin (the "Conversion status" tab) and an `aws_default` connection that points at the emulator.
Ctrl-C (SIGINT) or SIGTERM stops everything it started: Airflow's whole process group, the Batch
jobs still running, then the emulator.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdf2md.contracts import DEFAULT_JOB_QUEUE, ENV_POLL_INTERVAL_S
from pdf2md.localbatch import aws_env, local_aws, provision

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_batch.literals import JobStatusType
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("pdf2md.local_airflow")

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "pdfs"
INPUT_BUCKET, OUTPUT_BUCKET = "pdf2md-input", "pdf2md-output"
SAMPLE_PREFIX = "pdfs/"
DEFAULT_PORT = 8080
START_TIMEOUT_S = 180
STOP_GRACE_S = 10
POLL_INTERVAL_S = "5"
"""The emulator answers in milliseconds: the wait task need not poll Batch every 30 s here."""
_ACTIVE: tuple[JobStatusType, ...] = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


class Stop(Exception):
    """SIGINT or SIGTERM arrived: shut down in order."""


def airflow_env(home: Path, port: int, endpoint: str) -> dict[str, str]:
    """What `airflow standalone` needs: its home, the project's DAGs and plugin, the emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__CORE__UNIT_TEST")}
    env.update(aws_env(endpoint))
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        ENV_POLL_INTERVAL_S: env.get(ENV_POLL_INTERVAL_S, POLL_INTERVAL_S),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    })
    return env


def upload_samples(s3: S3Client) -> int:
    """The shipped sample PDFs (born-digital, scanned, encrypted, broken) under the default input."""
    samples = sorted(SAMPLES.glob("*.pdf"))
    for pdf in samples:
        s3.upload_file(str(pdf), INPUT_BUCKET, SAMPLE_PREFIX + pdf.name)
    return len(samples)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = START_TIMEOUT_S) -> None:
    """Until the API server answers its health check; fails at once if Airflow exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"Airflow was not healthy at {url} after {timeout_s:.0f} s")


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the process group, then SIGKILL to whatever is left of it (the scheduler and the
    API server's workers can outlive the standalone process itself)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    proc.wait()


def stop_jobs(batch: BatchClient, timeout_s: float = STOP_GRACE_S) -> int:
    """Terminate the Batch jobs still active (the executor SIGTERMs their workers) and wait for them."""
    def active() -> list[str]:
        return [j["jobId"] for status in _ACTIVE
                for j in batch.list_jobs(jobQueue=DEFAULT_JOB_QUEUE, jobStatus=status)["jobSummaryList"]]

    jobs = active()
    for job_id in jobs:
        batch.terminate_job(jobId=job_id, reason="make airflow stopped")
    deadline = time.monotonic() + timeout_s
    while jobs and active() and time.monotonic() < deadline:
        time.sleep(0.2)
    return len(jobs)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into Stop, once: a second Ctrl-C does not cut the shutdown short."""
    def handler(_signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Stop

    saved = signal.signal(signal.SIGINT, handler), signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


def run(home: Path, port: int) -> int:
    import boto3

    home.mkdir(parents=True, exist_ok=True)
    url = f"http://localhost:{port}"
    with stop_on_signals(), local_aws() as endpoint:
        provision(endpoint, buckets=(INPUT_BUCKET, OUTPUT_BUCKET))
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        count = upload_samples(session.client("s3", endpoint_url=endpoint))
        log.info("local AWS at %s: %d sample PDFs in s3://%s/%s", endpoint, count, INPUT_BUCKET, SAMPLE_PREFIX)
        airflow_log = home / "standalone.log"
        log.info("starting airflow standalone (home %s, output in %s)", home, airflow_log)
        with airflow_log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=airflow_env(home, port, endpoint),
                                    stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        try:
            wait_healthy(url, proc)
            print(f"\nAirflow is up: {url}/dags/pdf2md_backfill  (no login: every user is admin)\n"
                  f"  Trigger with the defaults, or set Input and Output (samples: s3://{INPUT_BUCKET}/{SAMPLE_PREFIX});\n"
                  f"  the run's page has a 'Conversion status' tab. Logs: {airflow_log}\n"
                  f"  Press Ctrl-C to stop Airflow and the local AWS.\n", flush=True)
            code = proc.wait()
            log.error("airflow standalone exited with %d: see %s", code, airflow_log)
            return 1
        except Stop:
            log.info("stopping Airflow and the local AWS")
            return 0
        except RuntimeError as exc:
            log.error("%s: see %s", exc, airflow_log)
            return 1
        finally:
            stop_group(proc)
            stopped = stop_jobs(session.client("batch", endpoint_url=endpoint))
            if stopped:
                log.info("terminated %d Batch job(s)", stopped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pdf2md.local_airflow", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PDF2MD_AIRFLOW_PORT", DEFAULT_PORT)),
                        help=f"the UI's port (default {DEFAULT_PORT}, or $PDF2MD_AIRFLOW_PORT)")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("AIRFLOW_HOME", REPO / ".airflow")),
                        help="Airflow's home: database, logs (default $AIRFLOW_HOME, else ./.airflow)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[airflow] %(message)s", stream=sys.stderr)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        return run(args.home.resolve(), args.port)
    except Stop:
        return 130


if __name__ == "__main__":
    sys.exit(main())
