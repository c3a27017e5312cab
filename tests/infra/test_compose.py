"""docker-compose.yaml: the local Airflow 3 + moto stack has the services, checks and wiring it needs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from pdf2md import contracts

from .conftest import REPO

COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "containers" / "airflow.Dockerfile"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
LONG_RUNNING = (*AIRFLOW_SERVICES, "postgres", "moto")


@pytest.fixture(scope="module")
def compose() -> dict:
    with COMPOSE.open() as fh:
        return yaml.safe_load(fh)  # resolves the x-airflow-common anchors and << merges


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_services_present(services: dict) -> None:
    assert set(services) >= {*AIRFLOW_SERVICES, "postgres", "moto", "airflow-init"}


def test_images_and_build(services: dict) -> None:
    assert services["moto"]["image"] == "motoserver/moto:5.2.5"
    assert services["postgres"]["image"].startswith("postgres:")
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        build = services[name]["build"]
        assert build["context"] == "."
        assert (REPO / build["dockerfile"]).resolve() == DOCKERFILE
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:3\.3\.2(-python3\.1[12])?$", text, re.M)
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}$", text, re.M)
    assert re.search(r'pip install .*"/opt/pdf2md\[\$\{PDF2MD_EXTRAS\}\]"', text)
    assert re.search(r"^ARG PDF2MD_EXTRAS=airflow\b", text, re.M)
    for copied in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M):
        for src in copied.split():
            assert (REPO / src).exists(), f"the Dockerfile copies {src}, which is not in the repo"


def test_airflow_commands(services: dict) -> None:
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer"}
    assert services["airflow-init"]["command"] == ["db", "migrate"]


def test_healthchecks(services: dict) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert check.get("interval") and check.get("retries"), name
    assert "/api/v2/monitor/health" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert "8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    assert "DagProcessorJob" in " ".join(services["airflow-dag-processor"]["healthcheck"]["test"])
    assert "TriggererJob" in " ".join(services["airflow-triggerer"]["healthcheck"]["test"])
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "localhost:5000" in " ".join(services["moto"]["healthcheck"]["test"])


def test_depends_on_conditions(services: dict) -> None:
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["moto"]["condition"] == "service_healthy", name
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert deps["moto-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-scheduler"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert services["airflow-init"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["moto-init"]["depends_on"] == {"moto": {"condition": "service_healthy"}}
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_airflow_environment(services: dict) -> None:
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        env = _env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert re.fullmatch(r"postgresql\+psycopg2://airflow:[^@]+@postgres:5432/airflow",
                            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert env["AWS_ENDPOINT_URL"] == "http://moto:5000"
        conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
        assert conn["conn_type"] == "aws"
        assert conn["extra"]["endpoint_url"] == "http://moto:5000"
        assert conn["extra"]["region_name"] == env["AWS_DEFAULT_REGION"]
        assert env["PDF2MD_JOB_QUEUE"] == contracts.DEFAULT_JOB_QUEUE
        assert env["PDF2MD_JOB_DEFINITION"] == contracts.DEFAULT_JOB_DEFINITION
        runs = contracts.S3Uri.parse(env["PDF2MD_RUNS_URI"])
        assert runs.prefix == getattr(contracts, "DEFAULT_RUNS_PREFIX", "pdf2md-runs/")
        assert runs.bucket == contracts.S3Uri.parse(env["PDF2MD_OUTPUT_URI"]).bucket
        assert env["PDF2MD_SQS_QUEUE_URL"].startswith("http://moto:5000/")


def test_mounts_and_ports(services: dict) -> None:
    for name in AIRFLOW_SERVICES:
        volumes = services[name]["volumes"]
        assert "./dags:/opt/airflow/dags" in volumes, name
        assert "./plugins:/opt/airflow/plugins" in volumes, name
    assert (REPO / "dags").is_dir() and (REPO / "plugins").is_dir()
    assert services["airflow-apiserver"]["ports"] == ["${AIRFLOW_HOST_PORT:-8080}:8080"]
    assert services["moto"]["ports"] == ["${MOTO_HOST_PORT:-5000}:5000"]
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "postgres"):
        assert "ports" not in services[name], f"{name} needs no published port"


def test_moto_init_provisions_the_emulator(services: dict) -> None:
    """Run moto-init's script against an in-process moto server: what the triggerer and DAGs expect exists."""
    pytest.importorskip("moto.server")
    import boto3

    init = services["moto-init"]
    assert init["entrypoint"] == ["python", "-c"]
    (script,) = init["command"]
    # Its own process: moto's state (and the simple-Batch switch moto-init flips) is per process.
    server, endpoint = _moto_in_a_subprocess()
    try:
        env = {**os.environ, **{k: v for k, v in _env(init).items() if k.startswith("AWS_")},
               "AWS_ENDPOINT_URL": endpoint}
        for _ in range(2):  # idempotent: a second `docker compose up` must not fail
            proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr[-3000:]
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        s3 = session.client("s3", endpoint_url=endpoint)
        sqs = session.client("sqs", endpoint_url=endpoint)
        batch = session.client("batch", endpoint_url=endpoint)
        airflow_env = _env(services["airflow-scheduler"])
        for uri in ("PDF2MD_INPUT_URI", "PDF2MD_OUTPUT_URI"):
            s3.head_bucket(Bucket=contracts.S3Uri.parse(airflow_env[uri]).bucket)
        assert batch.describe_job_queues(jobQueues=[contracts.DEFAULT_JOB_QUEUE])["jobQueues"]
        assert batch.describe_job_definitions(jobDefinitionName=contracts.DEFAULT_JOB_DEFINITION)["jobDefinitions"]
        queue_name = airflow_env["PDF2MD_SQS_QUEUE_URL"].rsplit("/", 1)[1]
        url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        sqs.purge_queue(QueueUrl=url)  # drop s3:TestEvent
        input_uri = contracts.S3Uri.parse(airflow_env["PDF2MD_INPUT_URI"])
        s3.put_object(Bucket=input_uri.bucket, Key=input_uri.dir_prefix + "a/b.pdf", Body=b"%PDF-1.4")
        s3.put_object(Bucket=input_uri.bucket, Key=input_uri.dir_prefix + "notes.txt", Body=b"x")
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        keys = [r["s3"]["object"]["key"] for m in messages for r in json.loads(m["Body"]).get("Records", [])]
        assert keys == [input_uri.dir_prefix.replace("/", "%2F") + "a%2Fb.pdf"] or keys == [input_uri.dir_prefix + "a/b.pdf"]
    finally:
        server.terminate()
        server.wait(10)


def _moto_in_a_subprocess() -> tuple[subprocess.Popen[bytes], str]:
    """A moto server on a free loopback port, in a child process; returns it once it answers."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            return proc, endpoint
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.1)
