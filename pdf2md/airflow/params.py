"""The trigger form: every setting a run takes, with a schema and a description.

What the form sends is validated further into a RunConfig (pdf2md.run_state) by the first task.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Param

from pdf2md.airflow.budget_sensor import DEFAULT_POLL_INTERVAL_S
from pdf2md.budget import DEFAULT_INSTANCE_TYPE, DEFAULT_PRICE_PER_HOUR
from pdf2md.contracts import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_INPUT_URI,
    DEFAULT_JOB_DEFINITION,
    DEFAULT_JOB_QUEUE,
    DEFAULT_MAX_PAGES,
    DEFAULT_OUTPUT_URI,
    DEFAULT_OUTPUTS,
    DEFAULT_PDF_MEMORY_MB,
    DEFAULT_PDF_TIMEOUT_S,
    DEFAULT_RUNS_PREFIX,
    ENV_INPUT_URI,
    ENV_JOB_DEFINITION,
    ENV_JOB_QUEUE,
    ENV_OUTPUT_URI,
    ENV_OUTPUTS,
    ENV_POLL_INTERVAL_S,
    ENV_RUNS_URI,
    MAX_ARRAY_SIZE,
    MIN_ARRAY_SIZE,
    OUTPUTS,
    parse_outputs,
)

MAX_BUDGET_USD = 1_000_000.0
MAX_SECONDS_PER_PAGE = 3600.0
MAX_PRICE_PER_HOUR = 1_000_000.0
"""Ceilings far above any real run (the dearest GPU instance costs about 100 USD an hour): they exist
so that Infinity is refused at trigger time."""
MAX_RERUN_ROUNDS = 3
"""Rounds are tasks in the graph, so their number has a ceiling; the Param picks up to it."""
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"
S3_RULE = "Format: s3://bucket/prefix/ (bucket: 3-63 lowercase letters, digits, dots, hyphens)."
"""Said next to each URI field: the trigger form shows descriptions, not the schema's pattern."""
DAILY_WHEN_SET = (ENV_INPUT_URI, ENV_OUTPUT_URI)
"""The daily catch-up runs only on prefixes the deployment named, never on the example defaults."""


NOT_NAN: dict[str, Any] = {"not": {"minimum": 1, "maximum": 0}}
"""JSON Schema cannot say "finite": every comparison with NaN is false, so of all numbers NaN alone meets
both bounds of this empty range, and `not` refuses it. A finite maximum refuses Infinity (minimums -Infinity)."""


def _number_param(default: float, title: str, description: str, maximum: float, **bounds: float) -> Param:
    """A finite decimal field: NaN or Infinity would pass plain bounds and switch every budget check off."""
    schema: dict[str, Any] = {"maximum": maximum, **bounds, **NOT_NAN}
    return Param(default, type="number", title=title, description=description, **schema)


def _s3_param(default: str | None, title: str, description: str, optional: bool = False) -> Param:
    """An s3:// URI field. Optional ones are nullable: Airflow's trigger form treats every field whose
    type lacks "null" as required, and sends an emptied field as null."""
    if not optional:
        return Param(default, title=title, description=description, type="string", pattern=S3_URI_PATTERN)
    return Param(default or None, title=title, description=description, type=["null", "string"],
                 pattern=f"^$|{S3_URI_PATTERN}")


def outputs_param() -> Param:
    """A multi-select of OUTPUTS (the form shows an array of enum values as one); the deployment's
    PDF2MD_OUTPUTS, else Markdown only, is the default, so S3-event runs take it too."""
    default = list(parse_outputs(os.environ.get(ENV_OUTPUTS) or ",".join(DEFAULT_OUTPUTS), ENV_OUTPUTS))
    return Param(default, type="array", items={"type": "string", "enum": list(OUTPUTS)}, uniqueItems=True, minItems=1,
                 contains={"const": "markdown"}, title="Outputs",
                 description="What each PDF becomes: markdown (<path>.md, always), json (<path>.json: pages, blocks with "
                             "boxes in points and confidence), figures (PNGs under <path>.assets/, linked from the Markdown), "
                             "page-markers (<!-- page N --> before each page). Each extra output is one more PUT per PDF "
                             "(figures: one per figure).")


def catch_up_schedule() -> str | None:
    """The backfill DAG's schedule: daily once the deployment has set its input and output, else none
    (runs start only from the trigger form, the CLI or the REST API), so unpausing starts nothing."""
    return "@daily" if all(os.environ.get(name) for name in DAILY_WHEN_SET) else None


def run_params() -> dict[str, Param]:
    """Built when a DAG file is parsed: defaults may come from the environment, never from AWS."""
    return {
        "input_uri": _s3_param(os.environ.get(ENV_INPUT_URI, DEFAULT_INPUT_URI), "Input",
                               f"The prefix holding the PDFs (listed recursively; other files are ignored). {S3_RULE}"),
        "output_uri": _s3_param(os.environ.get(ENV_OUTPUT_URI, DEFAULT_OUTPUT_URI), "Output",
                                "Where the Markdown goes: <output>/<path under input>.md; PDFs whose Markdown is "
                                f"newer than the PDF are skipped. Must not be inside the input. {S3_RULE}"),
        "runs_uri": _s3_param(os.environ.get(ENV_RUNS_URI), "Run artefacts",
                              f"Optional: leave empty for s3://<output bucket>/{DEFAULT_RUNS_PREFIX}. Where manifests, "
                              f"failure records, progress and the report go. {S3_RULE}", optional=True),
        "array_size": Param(100, type="integer", minimum=MIN_ARRAY_SIZE, maximum=MAX_ARRAY_SIZE, title="Array size",
                            description="Batch array children (2–10,000); fewer are used when there are fewer PDFs."),
        "backend": Param(DEFAULT_BACKEND, type="string", enum=list(BACKENDS), title="Backend",
                         description="auto: text layer where usable, Dolphin (GPU) or OCR for the rest; text, ocr, dolphin: force one."),
        "job_queue": Param(os.environ.get(ENV_JOB_QUEUE, DEFAULT_JOB_QUEUE), type="string", minLength=1,
                           title="Job queue", description="AWS Batch job queue (terraform output job_queue)."),
        "job_definition": Param(os.environ.get(ENV_JOB_DEFINITION, DEFAULT_JOB_DEFINITION), type="string", minLength=1,
                                title="Job definition", description="AWS Batch job definition (terraform output job_definition)."),
        "budget_usd": _number_param(50.0, "Budget (USD)", "The run halts (jobs terminated, run failed) when its estimate "
                                    "or its spend passes this.", maximum=MAX_BUDGET_USD, minimum=0),
        "max_rerun_rounds": Param(2, type="integer", minimum=0, maximum=MAX_RERUN_ROUNDS, title="Rerun rounds",
                                  description="How many times retryable failures (interrupted, S3 errors) are rerun, each as its own array job."),
        "retry_failed": Param(False, type="boolean", title="Retry known failures",
                              description="Also retry PDFs that failed for good in earlier runs (e.g. after adding a password)."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Plan and estimate only: write the manifest and the report, submit nothing."),
        "seconds_per_page": _number_param(1.0, "Seconds per page", "Expected instance seconds per page, for the pre-flight "
                                          "estimate.", maximum=MAX_SECONDS_PER_PAGE, exclusiveMinimum=0),
        "pages_in_parallel": Param(1, type="integer", minimum=1, maximum=64, title="Pages in parallel",
                                   description="Pages one instance converts at once (the estimate divides by it)."),
        "bytes_per_page": Param(100_000, type="integer", minimum=1000, title="Bytes per page",
                                description="Page count estimate from PDF sizes (pages are unknown before a PDF is opened)."),
        "price_per_hour_usd": _number_param(DEFAULT_PRICE_PER_HOUR, "Fallback price (USD/h)", "Instance price used when the "
                                            "Spot price history is missing or implausible.", maximum=MAX_PRICE_PER_HOUR,
                                            exclusiveMinimum=0),
        "instance_type": Param(DEFAULT_INSTANCE_TYPE, type="string", title="Instance type",
                               description="Instance type whose Spot price is looked up."),
        "pdf_timeout_s": Param(DEFAULT_PDF_TIMEOUT_S, type="integer", minimum=1, title="Timeout per PDF (s)",
                               description="A PDF that takes longer fails with error class timeout."),
        "pdf_memory_mb": Param(DEFAULT_PDF_MEMORY_MB, type="integer", minimum=256, title="Memory per PDF (MB)",
                               description="A PDF that needs more fails with error class resource-limit."),
        "max_pages": Param(DEFAULT_MAX_PAGES, type="integer", minimum=1, title="Maximum pages",
                           description="PDFs with more pages fail with error class too-many-pages."),
        "passwords_uri": _s3_param(None, "Passwords",
                                   "Optional: the s3:// key of a JSON list of passwords to try on encrypted PDFs; empty: none. "
                                   + S3_RULE, optional=True),
        "inventory_uri": _s3_param(None, "S3 Inventory",
                                   "Optional: an S3 Inventory report of the input bucket — its manifest.json, or the "
                                   "<source bucket>/<config id>/ folder for the newest — read instead of listing the input; "
                                   "PDFs added after the report wait for the next one. Empty: list the input. " + S3_RULE,
                                   optional=True),
        "outputs": outputs_param(),
        "aws_conn_id": Param("aws_default", type="string", title="AWS connection", description="Airflow connection for AWS."),
        "poll_interval_s": Param(int(os.environ.get(ENV_POLL_INTERVAL_S) or DEFAULT_POLL_INTERVAL_S), type="integer", minimum=1, maximum=600,
                                 title="Poll interval (s)", description="How often the wait checks the array job and its spend."),
    }
