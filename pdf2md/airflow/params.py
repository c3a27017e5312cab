"""The trigger form: every setting a run takes, with a schema and a description; and its validation."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from airflow.sdk import Param

from pdf2md.budget import DEFAULT_INSTANCE_TYPE, DEFAULT_PRICE_PER_HOUR
from pdf2md.contracts import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_JOB_DEFINITION,
    DEFAULT_JOB_QUEUE,
    DEFAULT_MAX_PAGES,
    DEFAULT_PDF_MEMORY_MB,
    DEFAULT_PDF_TIMEOUT_S,
    DEFAULT_RUNS_PREFIX,
    MAX_ARRAY_SIZE,
    MIN_ARRAY_SIZE,
    S3Uri,
)

MAX_RERUN_ROUNDS = 3
"""Rounds are tasks in the graph, so their number has a ceiling; the Param picks up to it."""
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"


def _s3_param(default: str, title: str, description: str, required: bool = True) -> Param:
    schema: dict[str, Any] = {"type": "string", "pattern": S3_URI_PATTERN} if required else {
        "type": "string", "anyOf": [{"pattern": S3_URI_PATTERN}, {"maxLength": 0}]}
    return Param(default, title=title, description=description, **schema)


def run_params() -> dict[str, Param]:
    """Built when a DAG file is parsed: defaults may come from the environment, never from AWS."""
    return {
        "input_uri": _s3_param(os.environ.get("PDF2MD_INPUT_URI", "s3://pdf2md-input/"), "Input",
                               "s3:// prefix holding the PDFs (listed recursively; other files are ignored)."),
        "output_uri": _s3_param(os.environ.get("PDF2MD_OUTPUT_URI", "s3://pdf2md-output/markdown/"), "Output",
                                "s3:// prefix for the Markdown: <output>/<path under input>.md. PDFs whose Markdown "
                                "is newer than the PDF are skipped."),
        "runs_uri": _s3_param(os.environ.get("PDF2MD_RUNS_URI", ""), "Run artefacts",
                              f"s3:// prefix for manifests, failure records, progress and the report. Empty: "
                              f"s3://<output bucket>/{DEFAULT_RUNS_PREFIX}.", required=False),
        "array_size": Param(100, type="integer", minimum=MIN_ARRAY_SIZE, maximum=MAX_ARRAY_SIZE, title="Array size",
                            description="Batch array children (2–10,000); fewer are used when there are fewer PDFs."),
        "backend": Param(DEFAULT_BACKEND, type="string", enum=list(BACKENDS), title="Backend",
                         description="auto: text layer where usable, Dolphin (GPU) or OCR for the rest; text, ocr, dolphin: force one."),
        "job_queue": Param(os.environ.get("PDF2MD_JOB_QUEUE", DEFAULT_JOB_QUEUE), type="string", minLength=1,
                           title="Job queue", description="AWS Batch job queue (terraform output job_queue)."),
        "job_definition": Param(os.environ.get("PDF2MD_JOB_DEFINITION", DEFAULT_JOB_DEFINITION), type="string", minLength=1,
                                title="Job definition", description="AWS Batch job definition (terraform output job_definition)."),
        "budget_usd": Param(50.0, type="number", minimum=0, title="Budget (USD)",
                            description="The run halts (jobs terminated, run failed) when its estimate or its spend passes this."),
        "max_rerun_rounds": Param(2, type="integer", minimum=0, maximum=MAX_RERUN_ROUNDS, title="Rerun rounds",
                                  description="How many times retryable failures (interrupted, S3 errors) are rerun, each as its own array job."),
        "retry_failed": Param(False, type="boolean", title="Retry known failures",
                              description="Also retry PDFs that failed for good in earlier runs (e.g. after adding a password)."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Plan and estimate only: write the manifest and the report, submit nothing."),
        "seconds_per_page": Param(1.0, type="number", exclusiveMinimum=0, title="Seconds per page",
                                  description="Expected instance seconds per page, for the pre-flight estimate."),
        "pages_in_parallel": Param(1, type="integer", minimum=1, maximum=64, title="Pages in parallel",
                                   description="Pages one instance converts at once (the estimate divides by it)."),
        "bytes_per_page": Param(100_000, type="integer", minimum=1000, title="Bytes per page",
                                description="Page count estimate from PDF sizes (pages are unknown before a PDF is opened)."),
        "price_per_hour_usd": Param(DEFAULT_PRICE_PER_HOUR, type="number", exclusiveMinimum=0, title="Fallback price (USD/h)",
                                    description="Instance price used when the Spot price history is missing or implausible."),
        "instance_type": Param(DEFAULT_INSTANCE_TYPE, type="string", title="Instance type",
                               description="Instance type whose Spot price is looked up."),
        "pdf_timeout_s": Param(DEFAULT_PDF_TIMEOUT_S, type="integer", minimum=1, title="Timeout per PDF (s)",
                               description="A PDF that takes longer fails with error class timeout."),
        "pdf_memory_mb": Param(DEFAULT_PDF_MEMORY_MB, type="integer", minimum=256, title="Memory per PDF (MB)",
                               description="A PDF that needs more fails with error class resource-limit."),
        "max_pages": Param(DEFAULT_MAX_PAGES, type="integer", minimum=1, title="Maximum pages",
                           description="PDFs with more pages fail with error class too-many-pages."),
        "passwords_uri": _s3_param("", "Passwords", "Optional s3:// key of a JSON list of passwords to try on encrypted PDFs.",
                                   required=False),
        "aws_conn_id": Param("aws_default", type="string", title="AWS connection", description="Airflow connection for AWS."),
        "poll_interval_s": Param(30, type="integer", minimum=1, maximum=600, title="Poll interval (s)",
                                 description="How often the wait checks the array job and its spend."),
    }


@dataclass(frozen=True)
class RunConfig:
    """The validated settings of one run, as the tasks pass them along (a plain dict in XCom)."""

    run_id: str
    input_uri: str
    output_uri: str
    runs_uri: str
    array_size: int
    backend: str
    job_queue: str
    job_definition: str
    budget_usd: float
    max_rerun_rounds: int
    retry_failed: bool
    dry_run: bool
    seconds_per_page: float
    pages_in_parallel: int
    bytes_per_page: int
    price_per_hour_usd: float
    instance_type: str
    pdf_timeout_s: int
    pdf_memory_mb: int
    max_pages: int
    passwords_uri: str
    aws_conn_id: str
    poll_interval_s: int

    @classmethod
    def from_params(cls, run_id: str, params: dict[str, Any]) -> RunConfig:
        """Checks the schema cannot express; raises ValueError with every problem at once."""
        names = {f.name for f in fields(cls)} - {"run_id"}
        values = {k: params[k] for k in names if k in params}
        missing = sorted(names - values.keys())
        if missing:
            raise ValueError(f"missing settings: {', '.join(missing)}")
        problems = []
        uris = {}
        for name in ("input_uri", "output_uri", "runs_uri", "passwords_uri"):
            if name in ("runs_uri", "passwords_uri") and not values[name]:
                continue
            try:
                uris[name] = S3Uri.parse(values[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        if not values.get("runs_uri") and "output_uri" in uris:
            values["runs_uri"] = str(S3Uri(uris["output_uri"].bucket, DEFAULT_RUNS_PREFIX))
            uris["runs_uri"] = S3Uri.parse(values["runs_uri"])
        if "input_uri" in uris and "output_uri" in uris and _overlaps(uris["input_uri"], uris["output_uri"]):
            problems.append("output_uri must not be inside input_uri or contain it")
        if "input_uri" in uris and "runs_uri" in uris and _overlaps(uris["input_uri"], uris["runs_uri"]):
            problems.append("runs_uri must not be inside input_uri or contain it")
        if values.get("backend") not in BACKENDS:
            problems.append(f"backend must be one of {', '.join(BACKENDS)}")
        if problems:
            raise ValueError("bad run configuration: " + "; ".join(problems))
        return cls(run_id=run_id, **values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _overlaps(a: S3Uri, b: S3Uri) -> bool:
    if a.bucket != b.bucket:
        return False
    pa, pb = a.dir_prefix, b.dir_prefix
    return pa.startswith(pb) or pb.startswith(pa)
