"""The one truth shared by the DAGs, the worker and the infrastructure.

Everything that crosses a process boundary is defined here: the manifest, the output layout, the
failure and progress records, the run report and the array job's environment. Terraform's job
definition and the DAG read the same names (a test checks it).
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, unquote

from pdf2md import __version__

CONVERTER_VERSION = f"pdf2md/{__version__}"

# --- the array job's environment -------------------------------------------------------------

ENV_MANIFEST_URI = "PDF2MD_MANIFEST_URI"
"""s3:// URI of the round's manifest: a folder ending in '/' holding one shard-NNNNN-of-SSSSS.jsonl per child
(what the planner writes), or one JSON Lines object that every child filters (hand-made manifests)."""
ENV_OUTPUT_URI = "PDF2MD_OUTPUT_URI"
"""s3:// prefix the Markdown goes to: <output>/<rel>.md, with the OutputMeta as x-amz-meta-*."""
ENV_RUN_URI = "PDF2MD_RUN_URI"
"""s3:// prefix of this run's artefacts (manifests, failures, progress, report)."""
ENV_RUN_ID = "PDF2MD_RUN_ID"
ENV_ROUND = "PDF2MD_ROUND"
"""0 for the first array job of a run, 1.. for the reruns of retryable failures."""
ENV_ARRAY_SIZE = "PDF2MD_ARRAY_SIZE"
ENV_BACKEND = "PDF2MD_BACKEND"
ENV_PDF_TIMEOUT_S = "PDF2MD_PDF_TIMEOUT_S"
ENV_PDF_MEMORY_MB = "PDF2MD_PDF_MEMORY_MB"
ENV_MAX_PAGES = "PDF2MD_MAX_PAGES"
ENV_JOBS = "PDF2MD_JOBS"
"""Converter processes per array child (each one PDF at a time, under its own limits); 0 or unset: as many as
the container's CPUs and memory allow (pdf2md.machine)."""
ENV_PASSWORDS_URI = "PDF2MD_PASSWORDS_URI"
"""Optional s3:// URI of a JSON list of passwords to try on encrypted PDFs (never in the job env)."""
ENV_MODEL_DIR = "PDF2MD_MODEL_DIR"
ENV_MODEL_URI = "PDF2MD_MODEL_URI"
"""Optional s3:// prefix of the model, synced once per instance into PDF2MD_MODEL_DIR."""
ENV_OUTPUTS = "PDF2MD_OUTPUTS"
"""What each PDF becomes, comma-separated (OUTPUTS); unset: Markdown only. In a deployment's environment
it is also the trigger form's default, so S3-event runs take it too."""

ENV_ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
ENV_ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"
ENV_JOB_ID = "AWS_BATCH_JOB_ID"

JOB_ENV_NAMES: tuple[str, ...] = (
    ENV_MANIFEST_URI,
    ENV_OUTPUT_URI,
    ENV_RUN_URI,
    ENV_RUN_ID,
    ENV_ROUND,
    ENV_ARRAY_SIZE,
    ENV_BACKEND,
    ENV_PDF_TIMEOUT_S,
    ENV_PDF_MEMORY_MB,
    ENV_MAX_PAGES,
    ENV_JOBS,
    ENV_PASSWORDS_URI,
    ENV_MODEL_DIR,
    ENV_MODEL_URI,
    ENV_OUTPUTS,
)
"""Variables the job definition and the submit call may set; AWS sets the AWS_BATCH_* ones."""

OUTPUTS: tuple[str, ...] = ("markdown", "json", "figures", "page-markers")
"""What a PDF can become: its Markdown (always: its metadata says what made every output), the document's
JSON beside it, its figures as images under <path>.assets/ linked from the Markdown, and page anchors
(`<!-- page N -->`) in the Markdown."""
DEFAULT_OUTPUTS: tuple[str, ...] = ("markdown",)

BACKENDS: tuple[str, ...] = ("auto", "text", "ocr", "dolphin")
DEFAULT_BACKEND = "auto"
DEFAULT_PDF_TIMEOUT_S = 600
DEFAULT_PDF_MEMORY_MB = 4096
DEFAULT_MAX_PAGES = 5000

# Names terraform creates and the DAG uses by default.
DEFAULT_JOB_QUEUE = "pdf2md-spot"
DEFAULT_JOB_DEFINITION = "pdf2md-worker"
DEFAULT_RUNS_PREFIX = "pdf2md-runs/"
"""Run artefacts live under s3://<output bucket>/pdf2md-runs/<run id>/ (terraform expires them)."""
DEFAULT_INPUT_URI = "s3://pdf2md-input/"
DEFAULT_OUTPUT_URI = "s3://pdf2md-output/markdown/"
"""The DAGs' Input and Output when ENV_INPUT_URI / ENV_OUTPUT_URI are unset (terraform's bucket names)."""

# The deployment's environment (Airflow's and a shell's): defaults of the trigger form and of
# `pdf2md status`. ENV_OUTPUT_URI above doubles as the default Output.
ENV_INPUT_URI = "PDF2MD_INPUT_URI"
"""The default Input; with ENV_OUTPUT_URI set too, the backfill DAG runs daily."""
ENV_RUNS_URI = "PDF2MD_RUNS_URI"
ENV_JOB_QUEUE = "PDF2MD_JOB_QUEUE"
ENV_JOB_DEFINITION = "PDF2MD_JOB_DEFINITION"
ENV_SQS_QUEUE_URL = "PDF2MD_SQS_QUEUE_URL"
"""The S3-event DAG's queue; unset: the DAG runs only when triggered."""
ENV_POLL_INTERVAL_S = "PDF2MD_POLL_INTERVAL_S"

MIN_ARRAY_SIZE = 2
MAX_ARRAY_SIZE = 10_000


@dataclass(frozen=True)
class JobSettings:
    """What one array child needs to know, as read from its environment."""

    manifest_uri: str
    output_uri: str
    run_uri: str
    run_id: str
    array_size: int
    array_index: int = 0
    round: int = 0
    attempt: int = 1
    backend: str = DEFAULT_BACKEND
    pdf_timeout_s: int = DEFAULT_PDF_TIMEOUT_S
    pdf_memory_mb: int = DEFAULT_PDF_MEMORY_MB
    max_pages: int = DEFAULT_MAX_PAGES
    passwords_uri: str | None = None
    jobs: int = 0
    """Converter processes (0: as many as the machine allows)."""
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobSettings:
        """Read the settings; a missing or malformed variable raises ValueError naming it."""
        missing = [n for n in (ENV_MANIFEST_URI, ENV_OUTPUT_URI, ENV_RUN_URI, ENV_RUN_ID, ENV_ARRAY_SIZE) if not env.get(n)]
        if missing:
            raise ValueError(f"missing environment variable(s): {', '.join(missing)}")
        settings = cls(
            manifest_uri=env[ENV_MANIFEST_URI],
            output_uri=env[ENV_OUTPUT_URI],
            run_uri=env[ENV_RUN_URI],
            run_id=env[ENV_RUN_ID],
            array_size=_int_env(env, ENV_ARRAY_SIZE, 1),
            array_index=_int_env(env, ENV_ARRAY_INDEX, 0),
            round=_int_env(env, ENV_ROUND, 0),
            attempt=_int_env(env, ENV_ATTEMPT, 1),
            backend=env.get(ENV_BACKEND) or DEFAULT_BACKEND,
            pdf_timeout_s=_int_env(env, ENV_PDF_TIMEOUT_S, DEFAULT_PDF_TIMEOUT_S),
            pdf_memory_mb=_int_env(env, ENV_PDF_MEMORY_MB, DEFAULT_PDF_MEMORY_MB),
            max_pages=_int_env(env, ENV_MAX_PAGES, DEFAULT_MAX_PAGES),
            passwords_uri=env.get(ENV_PASSWORDS_URI) or None,
            jobs=_int_env(env, ENV_JOBS, 0),
            outputs=parse_outputs(env.get(ENV_OUTPUTS) or ",".join(DEFAULT_OUTPUTS), ENV_OUTPUTS),
        )
        if settings.array_size < 1:
            raise ValueError(f"{ENV_ARRAY_SIZE} must be >= 1, got {settings.array_size}")
        if not 0 <= settings.array_index < settings.array_size:
            raise ValueError(f"{ENV_ARRAY_INDEX}={settings.array_index} is outside 0..{settings.array_size - 1}")
        if settings.jobs < 0:
            raise ValueError(f"{ENV_JOBS} must be >= 0 (0: as many as the machine allows), got {settings.jobs}")
        if settings.backend not in BACKENDS:
            raise ValueError(f"{ENV_BACKEND}={settings.backend!r} is not one of {', '.join(BACKENDS)}")
        return settings

    def to_env(self) -> dict[str, str]:
        """The variables a submit call passes to every child (AWS adds the index and attempt)."""
        env = {
            ENV_MANIFEST_URI: self.manifest_uri,
            ENV_OUTPUT_URI: self.output_uri,
            ENV_RUN_URI: self.run_uri,
            ENV_RUN_ID: self.run_id,
            ENV_ROUND: str(self.round),
            ENV_ARRAY_SIZE: str(self.array_size),
            ENV_BACKEND: self.backend,
            ENV_PDF_TIMEOUT_S: str(self.pdf_timeout_s),
            ENV_PDF_MEMORY_MB: str(self.pdf_memory_mb),
            ENV_MAX_PAGES: str(self.max_pages),
        }
        if self.passwords_uri:
            env[ENV_PASSWORDS_URI] = self.passwords_uri
        if self.jobs:
            env[ENV_JOBS] = str(self.jobs)
        if self.outputs != DEFAULT_OUTPUTS:
            env[ENV_OUTPUTS] = ",".join(self.outputs)
        return env


SHARD_ENV_NAMES: tuple[str, ...] = (
    ENV_MANIFEST_URI, ENV_OUTPUT_URI, ENV_RUN_URI, ENV_RUN_ID, ENV_ARRAY_SIZE, ENV_ARRAY_INDEX, ENV_ROUND, ENV_ATTEMPT,
)
"""What a child needs to find its shard and write its records: with these alone it can still record a fault in
the rest of its environment (JobSettings.from_env of just these)."""


def parse_passwords(body: bytes, uri: str) -> tuple[str, ...]:
    """The passwords object's content: a JSON list of strings (ValueError naming `uri` otherwise)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
        raise ValueError(f"passwords_uri {uri} must hold a JSON list of strings")
    return tuple(data)
def parse_outputs(value: str | Iterable[str], name: str = "outputs") -> tuple[str, ...]:
    """Outputs named in a comma-separated string or a list, in OUTPUTS' order, each once; ValueError for a
    name not in OUTPUTS or a list without markdown."""
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise ValueError(f"{name}: {', '.join(map(repr, unknown))} not one of {', '.join(OUTPUTS)}")
    if "markdown" not in names:
        raise ValueError(f"{name} must include markdown (its object records what made the other outputs)")
    return tuple(n for n in OUTPUTS if n in names)


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


# --- sharding ---------------------------------------------------------------------------------


def shard_of(index: int, array_size: int) -> int:
    """Child i of an array of `array_size` converts the manifest entries with index % size == i."""
    return index % array_size


def effective_array_size(n_entries: int, requested: int) -> int:
    """Never more children than PDFs; AWS wants 2..10,000 (a single PDF runs on a 2-array)."""
    return max(MIN_ARRAY_SIZE, min(requested, MAX_ARRAY_SIZE, max(n_entries, 1)))


# --- records ----------------------------------------------------------------------------------

R = TypeVar("R", bound="Record")


class Record:
    """A dataclass that round-trips through one JSON object, ignoring unknown keys."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        """Strict JSON: a number that is not finite (NaN, ±Infinity) is written null, as JSON has no such
        numbers and other readers (jq, browsers, Athena) refuse the file."""
        data = self.to_dict()
        try:
            return _dumps(data)
        except ValueError:  # rare: walk the record only then
            return _dumps(_finite(data))

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls: type[R], line: str) -> R:
        return cls.from_dict(json.loads(line))


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class ManifestEntry(Record):
    """One PDF to convert. `rel` is its key relative to the input prefix; `attempt` counts rounds.

    `mtime` is the source's LastModified (epoch seconds): an output newer than it is up to date.
    `replaces` carries the planner's decision so that no child lists the outputs: the ETag of the stale
    Markdown this PDF replaces (If-Match), or "" when there was none (If-None-Match: *).
    """

    bucket: str
    key: str
    rel: str
    size: int
    etag: str
    mtime: float = 0.0
    attempt: int = 1
    replaces: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class PageRoute(Record):
    """How one page was converted and why."""

    page: int
    route: str
    reason: str
    seconds: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)
    """What the model backend reported for the page (Dolphin: layout, elements, gpu_peak_mb, figures)."""


@dataclass(frozen=True)
class OutputMeta(Record):
    """What made an output. Its scalar fields ride on the Markdown object as x-amz-meta-* (one PUT per
    PDF); the whole record, routes included, goes to the shard's results file."""

    source_uri: str
    source_etag: str
    output_uri: str
    converter_version: str
    backend: str
    pages: int
    seconds: float
    run_id: str = ""
    gpu_peak_mb: float | None = None
    routes: list[dict[str, Any]] = field(default_factory=list)
    outputs: str | None = None
    """The outputs written with this Markdown, comma-separated, when more than the Markdown (None: Markdown only)."""
    figures: int | None = None
    """Figure images written (None: figures were not asked for)."""

    _S3_FIELDS: ClassVar[tuple[str, ...]] = (
        "source_uri", "source_etag", "converter_version", "backend", "pages", "seconds", "run_id", "gpu_peak_mb",
        "outputs", "figures",
    )

    def to_s3_metadata(self) -> dict[str, str]:
        """x-amz-meta-* values: ASCII only (S3 rejects the rest), so the source URI is percent-encoded."""
        meta = {name.replace("_", "-"): str(value) for name in self._S3_FIELDS if (value := getattr(self, name)) is not None}
        meta["source-uri"] = quote(self.source_uri, safe="/:")
        return meta

    @classmethod
    def from_s3_metadata(cls, metadata: Mapping[str, str], output_uri: str) -> OutputMeta:
        get = {k.lower(): v for k, v in metadata.items()}.get
        return cls(
            source_uri=unquote(get("source-uri", "")),
            source_etag=get("source-etag", ""),
            output_uri=output_uri,
            converter_version=get("converter-version", ""),
            backend=get("backend", ""),
            pages=int(get("pages", "0") or 0),
            seconds=float(get("seconds", "0") or 0),
            run_id=get("run-id", ""),
            gpu_peak_mb=float(peak) if (peak := get("gpu-peak-mb")) else None,
            outputs=get("outputs") or None,
            figures=int(n) if (n := get("figures")) else None,
        )


class ErrorKind(StrEnum):
    """Why a PDF failed: the closed set of `FailureRecord.error_class` values (ERROR_CLASSES says more)."""

    NOT_PDF = "not-pdf"
    PASSWORD_REQUIRED = "password-required"
    CORRUPT = "corrupt"
    EMPTY = "empty"
    TOO_MANY_PAGES = "too-many-pages"
    TIMEOUT = "timeout"
    RESOURCE_LIMIT = "resource-limit"
    CONVERSION_ERROR = "conversion-error"
    KEY_COLLISION = "key-collision"
    GONE = "gone"
    CONFIG_FAULT = "config-fault"
    INTERRUPTED = "interrupted"
    SOURCE_CHANGED = "source-changed"
    S3_ERROR = "s3-error"
    BACKEND_UNAVAILABLE = "backend-unavailable"
    WRONG_GENERATION = "wrong-generation"


class ShardState(StrEnum):
    """`ShardProgress.state`: what a shard's latest attempt is doing or did."""

    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class RunStatus(StrEnum):
    """`RunReport.status`: how a run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    HALTED_BUDGET = "halted-budget"
    DRY_RUN = "dry-run"


def _coerce(record: Any, name: str, kind: type[StrEnum]) -> None:
    """Records read from JSON carry plain strings: make them members (an unknown value is a ValueError)."""
    value = getattr(record, name)
    if not isinstance(value, kind):
        object.__setattr__(record, name, kind(value))


@dataclass(frozen=True)
class FailureRecord(Record):
    """A PDF a shard could not convert; `retryable` ones go to the next round's manifest."""

    key: str
    rel: str
    bucket: str
    etag: str
    size: int
    error_class: ErrorKind
    message: str
    retryable: bool
    attempt: int
    shard: int
    round: int
    run_id: str

    mtime: float = 0.0
    replaces: str = ""

    def __post_init__(self) -> None:
        _coerce(self, "error_class", ErrorKind)

    @classmethod
    def of(cls, entry: ManifestEntry, error_class: ErrorKind | str, message: str, *, shard: int, round: int,
           run_id: str) -> FailureRecord:
        """The record of `entry` failing: the one place a failure is built from a manifest entry."""
        kind = ErrorKind(error_class)
        return cls(
            key=entry.key, rel=entry.rel, bucket=entry.bucket, etag=entry.etag, size=entry.size, mtime=entry.mtime,
            replaces=entry.replaces, error_class=kind, message=message.splitlines()[0][:500] if message else str(kind),
            retryable=is_retryable(kind), attempt=entry.attempt, shard=shard, round=round, run_id=run_id,
        )

    def to_manifest_entry(self) -> ManifestEntry:
        """The entry that reruns this PDF in the next round."""
        return ManifestEntry(
            bucket=self.bucket, key=self.key, rel=self.rel, size=self.size, etag=self.etag, mtime=self.mtime,
            attempt=self.attempt + 1, replaces=self.replaces,
        )


@dataclass(frozen=True)
class ShardProgress(Record):
    """A shard's state, rewritten as it goes; what the status view and the reduce step read."""

    run_id: str
    round: int
    shard: int
    attempt: int
    state: ShardState
    assigned: int
    converted: int = 0
    skipped: int = 0
    failed: int = 0
    pages: int = 0
    started_at: float = 0.0
    updated_at: float = 0.0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        _coerce(self, "state", ShardState)


PROGRESS_BAND = 100
"""Shards per progress band: a round's live view is ceil(size / 100) objects, not one per shard."""


def band_of(shard: int) -> int:
    """Shards 0-99 share band 0, 100-199 band 1, ...: their progress keys share the prefix shard-000.., shard-001.."""
    return shard // PROGRESS_BAND


@dataclass(frozen=True)
class ProgressBand(Record):
    """The latest ShardProgress of up to PROGRESS_BAND shards, kept in one object by the shards themselves
    (each merges its own record in with a conditional PUT): the per-round aggregate a status view reads."""

    round: int
    band: int
    shards: list[dict[str, Any]] = field(default_factory=list)

    def records(self) -> list[ShardProgress]:
        return [ShardProgress.from_dict(d) for d in self.shards]

    def merged(self, record: ShardProgress) -> ProgressBand:
        """This band with `record` in place of its shard's previous one (shards stay in order)."""
        others = [d for d in self.shards if d.get("shard") != record.shard]
        return ProgressBand(self.round, self.band, sorted([*others, record.to_dict()], key=lambda d: int(d["shard"])))


@dataclass(frozen=True)
class Plan(Record):
    """What a round will do, written to <run>/round-<r>/plan.json; `manifest_uri` is what the children read."""

    manifest_uri: str
    round: int
    listed: int
    skipped: int
    known_failures: int
    collisions: int
    entries: int
    bytes: int
    array_size: int

    def shard_entries(self, shard: int) -> int:
        """How many entries child `shard` holds (index % size == shard)."""
        whole, extra = divmod(self.entries, self.array_size)
        return whole + (1 if shard < extra else 0)


@dataclass
class RoundSummary(Record):
    """One round's outcome, written to <run>/round-<r>/summary.json and handed to the next task."""

    round: int
    planned: int = 0
    converted: int = 0
    skipped: int = 0
    pages: int = 0
    converter_seconds: float = 0.0
    permanent_by_class: dict[str, int] = field(default_factory=dict)
    retryable_by_class: dict[str, int] = field(default_factory=dict)
    rerun_manifest_uri: str = ""
    rerun_array_size: int = 0
    rerun_entries: int = 0
    record_faults: int = 0
    """Lines of the shards' result and failure files that could not be read, and records of PDFs outside their
    shard's manifest: each one is ignored (logged), the shard's other records still count, and its PDFs
    left unaccounted for are checked like those of a child that never reported."""
    figures: int = 0
    """Figure images written with the round's Markdown."""


@dataclass
class RunReport(Record):
    """The run's summary, one JSON object at <run>/report.json."""

    run_id: str
    input_uri: str
    output_uri: str
    status: RunStatus
    listed: int = 0
    planned: int = 0
    converted: int = 0
    skipped: int = 0
    known_failures: int = 0
    failed: int = 0
    failed_by_class: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    rounds: int = 0
    gpu_hours: float = 0.0
    price_per_hour_usd: float = 0.0
    estimated_cost_usd: float = 0.0
    budget_usd: float = 0.0
    wall_seconds: float = 0.0
    pages_per_hour: float = 0.0
    message: str = ""
    outputs: list[str] = field(default_factory=lambda: list(DEFAULT_OUTPUTS))
    """What the run was asked to write per PDF (contracts.OUTPUTS)."""
    figures: int = 0
    """Figure images written."""

    def __post_init__(self) -> None:
        _coerce(self, "status", RunStatus)


# --- error classes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorClass:
    name: ErrorKind
    retryable: bool
    meaning: str
    marked: bool = True
    """Whether a permanent failure of this class leaves a marker beside the outputs (failure_marker_key), so
    that later plans skip this version of the PDF: not for what is no fault of the PDF's own."""


ERROR_CLASSES: dict[str, ErrorClass] = {
    e.name: e
    for e in (
        ErrorClass(ErrorKind.NOT_PDF, False, "the file is not a PDF"),
        ErrorClass(ErrorKind.PASSWORD_REQUIRED, False, "encrypted and no supplied password opens it"),
        ErrorClass(ErrorKind.CORRUPT, False, "a PDF that no parser can repair"),
        ErrorClass(ErrorKind.EMPTY, False, "a PDF with no pages"),
        ErrorClass(ErrorKind.TOO_MANY_PAGES, False, "more pages than the run allows"),
        ErrorClass(ErrorKind.TIMEOUT, False, "conversion ran past the per-PDF time limit"),
        ErrorClass(ErrorKind.RESOURCE_LIMIT, False, "conversion ran past the per-PDF memory limit"),
        ErrorClass(ErrorKind.CONVERSION_ERROR, False, "the converter failed on this PDF"),
        ErrorClass(ErrorKind.KEY_COLLISION, False, "another PDF's key maps to the same output (e.g. a.pdf and a.PDF): "
                   "the first converted keeps it", marked=False),
        ErrorClass(ErrorKind.GONE, False, "the PDF was deleted between the listing and its conversion"),
        ErrorClass(ErrorKind.CONFIG_FAULT, False, "the child could not start with its configuration (its passwords object, "
                   "its environment): not rerun; the next run after the fix converts these PDFs", marked=False),
        ErrorClass(ErrorKind.INTERRUPTED, True, "the shard was stopped (Spot reclaim) before this PDF finished"),
        ErrorClass(ErrorKind.SOURCE_CHANGED, True, "the PDF was replaced while it converted: the next round converts the new version"),
        ErrorClass(ErrorKind.S3_ERROR, True, "S3 kept failing for this PDF after botocore's retries"),
        ErrorClass(ErrorKind.BACKEND_UNAVAILABLE, True, "the model backend could not start on this host"),
        ErrorClass(ErrorKind.WRONG_GENERATION, True, "Dolphin's layout answers are in another generation's format: the shard stopped (set PDF2MD_DOLPHIN_GENERATION)"),
    )
}
"""Keyed by ErrorKind (a str: plain names look up the same entries)."""


def is_retryable(error_class: str) -> bool:
    return ERROR_CLASSES[error_class].retryable


def leaves_marker(error_class: str) -> bool:
    """A permanent failure of the PDF itself: its marker makes later plans skip this version."""
    known = ERROR_CLASSES[error_class]
    return not known.retryable and known.marked


# --- S3 layout --------------------------------------------------------------------------------

_ETAG_SAFE = re.compile(r"[^0-9A-Za-z-]")


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, _, prefix = uri[5:].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri!r}")
        return cls(bucket, prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def dir_prefix(self) -> str:
        """The prefix as a folder: '' or ending in '/'."""
        return self.prefix if not self.prefix or self.prefix.endswith("/") else self.prefix + "/"

    def join(self, *parts: str) -> S3Uri:
        return S3Uri(self.bucket, self.dir_prefix + "/".join(p.strip("/") for p in parts))


def normalize_etag(etag: str) -> str:
    """S3 returns ETags quoted; we store them bare and safe to put in a key."""
    return _ETAG_SAFE.sub("", etag.strip().strip('"'))


MAX_NAME_BYTES = 200
"""Longest path component safe_rel keeps: local file systems stop at 255 bytes, and the CLI writes
'.<name>.md.XXXXXXXX.tmp' beside each output."""
MAX_REL_BYTES = 900
"""Longest relative path safe_rel keeps: S3 keys stop at 1,024 bytes, output prefix included."""


def safe_rel(rel: str) -> str:
    """A relative key that cannot escape its prefix or a local folder ('..', '/', '\\0' removed).

    Over-long names are shortened, keeping a digest of the original so that distinct keys stay
    distinct: a component to MAX_NAME_BYTES, and a path over MAX_REL_BYTES to one digest folder and its
    file name. Idempotent: safe_rel(safe_rel(k)) == safe_rel(k).
    """
    parts = [p for p in rel.replace("\\", "/").replace("\x00", "").split("/") if p not in ("", ".", "..")]
    if not parts:
        raise ValueError(f"key {rel!r} has no usable name")
    parts = [_shorten(p, MAX_NAME_BYTES) for p in parts]
    if len(_utf8("/".join(parts))) > MAX_REL_BYTES:
        parts = ["~" + _digest("/".join(parts[:-1])), parts[-1]]
    return "/".join(parts)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # local names may carry surrogate escapes


def _digest(text: str) -> str:
    return hashlib.sha256(_utf8(text)).hexdigest()[:16]


def _shorten(name: str, limit: int) -> str:
    """`name` if it fits in `limit` UTF-8 bytes, else its head + '~' + a digest (+ its short extension)."""
    if len(_utf8(name)) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 8 or "~" in ext:
        stem, ext = name, ""
    suffix = "~" + _digest(name) + (f".{ext}" if ext else "")
    head = _utf8(stem)[: limit - len(_utf8(suffix))].decode("utf-8", "ignore")
    return head + suffix


def relative_key(key: str, input_prefix: str) -> str:
    """The key's path under the input prefix: what the output mirrors."""
    prefix = input_prefix if not input_prefix or input_prefix.endswith("/") else posixpath.dirname(input_prefix) + "/"
    if prefix in ("/",):
        prefix = ""
    rel = key[len(prefix):] if prefix and key.startswith(prefix) else key
    return safe_rel(rel)


def markdown_rel(rel: str) -> str:
    """a/b.pdf -> a/b.md (any other name gets .md appended)."""
    stem = rel[:-4] if rel.lower().endswith(".pdf") else rel
    return stem + ".md"


def output_key(output: S3Uri, rel: str) -> str:
    return output.dir_prefix + markdown_rel(safe_rel(rel))


FAILED_DIR = "_pdf2md/failed/"


def json_rel(rel: str) -> str:
    """a/b.pdf -> a/b.json: the document's JSON beside its Markdown."""
    return markdown_rel(rel)[:-3] + ".json"


def json_key(output: S3Uri, rel: str) -> str:
    return output.dir_prefix + json_rel(safe_rel(rel))


def assets_rel(rel: str) -> str:
    """a/b.pdf -> a/b.assets/: the folder of the document's figures, beside its Markdown."""
    return markdown_rel(rel)[:-3] + ".assets/"


def assets_prefix(output: S3Uri, rel: str) -> str:
    return output.dir_prefix + assets_rel(safe_rel(rel))


def failure_marker_key(output: S3Uri, rel: str) -> str:
    """<output>/_pdf2md/failed/<rel>.json: a permanent failure, so the next plan skips the PDF too."""
    return f"{output.dir_prefix}{FAILED_DIR}{markdown_rel(safe_rel(rel))[:-3]}.json"


def is_up_to_date(output_mtime: float | None, source_mtime: float) -> bool:
    """An output is current when it was written after the source last changed (make's rule)."""
    return output_mtime is not None and output_mtime >= source_mtime


def is_output_current(output_mtime: float | None, output_source_etag: str | None, entry: ManifestEntry) -> bool:
    """An output is current for `entry` when it was written after the source last changed (make's rule) and,
    where both ETags are known, made from this very version: a PDF replaced while it converted leaves an
    output newer than the new version, of the old one."""
    if not is_up_to_date(output_mtime, entry.mtime):
        return False
    return not output_source_etag or not entry.etag or normalize_etag(output_source_etag) == normalize_etag(entry.etag)


def output_owner(metadata: Mapping[str, str]) -> str:
    """The s3:// URI of the PDF an output was made from, from its x-amz-meta-* ('' when it names none):
    the first PDF converted to an output keeps it, another key that maps to it is a key collision."""
    return OutputMeta.from_s3_metadata(metadata, "").source_uri


def is_pdf_key(key: str) -> bool:
    return key.lower().endswith(".pdf") and not key.endswith("/")


@dataclass(frozen=True)
class RunLayout:
    """Where a run's artefacts live, per round <run>/round-<r>/:

    plan.json                   the Plan (array size, counts)
    manifest/shard-NNNNN-of-SSSSS.jsonl  child NNNNN's entries, in index order: all a child reads to start
    manifest.jsonl              every entry in index order (entry i belongs to child i % size), for people and tools
    failures/, results/         per shard and attempt, written when the attempt ends
    progress/shard-NNNNN.json   each shard's latest ShardProgress
    progress-bands/band-NNNN.json  the same records, PROGRESS_BAND shards per object (what a status view reads)
    summary.json                the RoundSummary, written by reduce

    and <run>/report.json.
    """

    run: S3Uri

    @classmethod
    def for_run(cls, runs_root: str, run_id: str) -> RunLayout:
        return cls(S3Uri.parse(runs_root).join(safe_run_id(run_id)))

    def _round(self, rnd: int) -> str:
        return f"{self.run.dir_prefix}round-{rnd:03d}/"

    def manifest_key(self, rnd: int) -> str:
        return self._round(rnd) + "manifest.jsonl"

    def shard_manifests_prefix(self, rnd: int) -> str:
        """The folder the children's ENV_MANIFEST_URI names."""
        return self._round(rnd) + "manifest/"

    def plan_key(self, rnd: int) -> str:
        return self._round(rnd) + "plan.json"

    def bands_prefix(self, rnd: int) -> str:
        return self._round(rnd) + "progress-bands/"

    def band_key(self, rnd: int, band: int) -> str:
        return f"{self.bands_prefix(rnd)}band-{band:04d}.json"

    def failures_prefix(self, rnd: int) -> str:
        return self._round(rnd) + "failures/"

    def failures_key(self, rnd: int, shard: int, attempt: int) -> str:
        return f"{self.failures_prefix(rnd)}shard-{shard:05d}.attempt-{attempt}.jsonl"

    def results_prefix(self, rnd: int) -> str:
        return self._round(rnd) + "results/"

    def results_key(self, rnd: int, shard: int, attempt: int) -> str:
        return f"{self.results_prefix(rnd)}shard-{shard:05d}.attempt-{attempt}.jsonl"

    def progress_prefix(self, rnd: int) -> str:
        return self._round(rnd) + "progress/"

    def progress_key(self, rnd: int, shard: int) -> str:
        return f"{self.progress_prefix(rnd)}shard-{shard:05d}.json"

    def summary_key(self, rnd: int) -> str:
        return self._round(rnd) + "summary.json"

    @property
    def report_key(self) -> str:
        return self.run.dir_prefix + "report.json"

    def uri(self, key: str) -> str:
        return f"s3://{self.run.bucket}/{key}"


def shard_manifest_key(manifest_prefix: str, shard: int, array_size: int) -> str:
    """Child `shard`'s own manifest object under a sharded manifest's folder, for an array of `array_size`
    (a child of an array of another size finds no object, and falls back to whole_manifest_key)."""
    return f"{manifest_prefix}shard-{shard:05d}-of-{array_size:05d}.jsonl"


def whole_manifest_key(manifest_prefix: str) -> str:
    """The single manifest beside a sharded manifest's folder: round-NNN/manifest/ -> round-NNN/manifest.jsonl."""
    return manifest_prefix.rstrip("/") + ".jsonl"


def is_sharded_manifest(manifest_uri: str) -> bool:
    """A manifest URI ending in '/' names the planner's per-shard folder; anything else is one JSON Lines object."""
    return manifest_uri.endswith("/")


RUN_ID_DIGEST_CHARS = 8
"""Hex digits of the original id that a sanitised run id ends with when sanitising changed it."""


def sanitised_name(text: str, unsafe: str, limit: int) -> str:
    """`text` with each run of `unsafe` characters as '-', at most `limit` characters.

    When that changes the text, '-' + a short digest of the original follows: 'nightly:1', 'nightly+1'
    and 'nightly 1' would otherwise share one name (one artefact folder, one set of Batch jobs), and so
    would two long ids that differ only past the limit. A name that was already safe is kept as it is.
    """
    clean = re.sub(unsafe, "-", text).strip("-")
    if clean == text and 0 < len(clean) <= limit:
        return clean
    tag = _digest(text)[:RUN_ID_DIGEST_CHARS]
    return f"{clean[: limit - len(tag) - 1].rstrip('-') or 'run'}-{tag}"


def safe_run_id(run_id: str) -> str:
    """Airflow run ids hold ':' and '+': a name safe in keys (the run's artefact folder), distinct per id."""
    return sanitised_name(run_id, r"[^A-Za-z0-9_.-]+", 128)


# --- JSON Lines -------------------------------------------------------------------------------


def dump_jsonl(records: Iterable[Record]) -> Iterator[bytes]:
    for rec in records:
        yield (rec.to_json() + "\n").encode()


def load_jsonl(cls: type[R], lines: Iterable[str | bytes], on_error: Callable[[str], None] | None = None) -> Iterator[R]:
    """The records of JSON Lines; a line that is not one raises ValueError naming it, or, with `on_error`,
    is handed to it (its message) and skipped: the lines around it still count."""
    for n, line in enumerate(lines, 1):
        try:
            text = line.decode() if isinstance(line, bytes) else line
            if not text.strip():
                continue
            record = cls.from_json(text)
        except (ValueError, TypeError) as exc:
            message = f"line {n} is not a valid {cls.__name__}: {exc}"
            if on_error is None:
                raise ValueError(message) from None
            on_error(message)
            continue
        yield record
