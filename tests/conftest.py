"""Shared fixtures: a local AWS (moto server + the local Batch executor) and the sample PDFs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO = Path(__file__).resolve().parents[1]

# Airflow reads its configuration when first imported: point it at a private home before that.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="pdf2md-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SAMPLES = Path(__file__).parent / "data" / "pdfs"
SHARED = REPO.parent / "shared"
GOOD_SAMPLES = ("crazyones.pdf", "code_and_formula.pdf", "table_mislabeled_as_picture.pdf", "FC60_Times.pdf", "PDFBOX-2984-rotations.pdf")
BROKEN_SAMPLES = ("broken-truncated.pdf", "not-a-pdf.pdf")


@pytest.fixture(scope="session")
def aws_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One emulator per test session, on a free port; boto3 in this process and its children use it."""
    from pdf2md.localbatch import aws_env, local_aws, provision

    log_dir = tmp_path_factory.mktemp("batch-logs")
    with local_aws(slots=3, log_dir=log_dir, stop_timeout_s=30) as endpoint:
        env = aws_env(endpoint)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        provision(endpoint, buckets=())
        try:
            yield endpoint
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def s3(aws_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")


@pytest.fixture
def batch(aws_endpoint: str) -> Any:
    return boto3.client("batch", endpoint_url=aws_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh bucket per test, so tests never see each other's objects."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def upload(s3: Any, bucket: str, key: str, sample: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=(SAMPLES / sample).read_bytes())


@pytest.fixture
def shared_corpus() -> Path:
    if not (SHARED / "corpus").is_dir():
        pytest.skip(f"../shared/corpus is absent (looked in {SHARED}): corpus tests need it")
    return SHARED / "corpus"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """`airflow db migrate` once per session, into the private AIRFLOW_HOME (SQLite)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=300)
