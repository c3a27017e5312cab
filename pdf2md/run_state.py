"""What a run's tasks hand each other: the validated settings, the plan's figures, each round's order.

The trigger form's values become a `RunConfig` once, in the first task; that task adds its `Plan` and
hands the pair on as one `RunState`, serialised in one place (`to_xcom` / `from_xcom`). Every later
task reads the same typed record instead of a dict of loose keys. A round's submit arguments travel
as a `RoundOrder`, whose XCom keys are the `OrderKey` members. Nothing here imports Airflow: the
status command and the report read these records where only boto3 is installed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Final

from pdf2md import s3 as s3io
from pdf2md.contracts import (
    BACKENDS,
    DEFAULT_OUTPUTS,
    DEFAULT_RUNS_PREFIX,
    ENV_ARRAY_INDEX,
    JobSettings,
    Plan,
    RunLayout,
    S3Uri,
    parse_outputs,
    sanitised_name,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OPTIONAL_URIS = ("runs_uri", "passwords_uri", "inventory_uri")
"""Settings that may be empty: "" means "not set" once a RunConfig is built."""
_JOB_NAME_LIMIT = 120
"""Batch job names hold 128 characters at most; the '-r<round>' suffix takes the rest."""


def runs_uri_for(output_uri: str) -> str:
    """Where run artefacts go when the run names no place: beside the output, in its bucket's runs folder."""
    return str(S3Uri(S3Uri.parse(output_uri).bucket, DEFAULT_RUNS_PREFIX))


def batch_job_name_prefix(run_id: str) -> str:
    """The name every array job of this run starts with (Batch allows letters, digits, '-' and '_');
    distinct per run id, as the status view finds a run's jobs by it."""
    head = "pdf2md-"
    return head + sanitised_name(run_id, r"[^A-Za-z0-9_-]+", _JOB_NAME_LIMIT - len(head))


def job_name(run_id: str, rnd: int) -> str:
    """Round `rnd`'s array job: the status view finds a run's jobs by the prefix and the round by the suffix."""
    return f"{batch_job_name_prefix(run_id)}-r{rnd}"


@dataclass(frozen=True)
class RunConfig:
    """The validated settings of one run (the trigger form's fields, defaults filled in)."""

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
    inventory_uri: str
    """An S3 Inventory report of the input bucket to plan from instead of listing it ("": list)."""
    aws_conn_id: str
    poll_interval_s: int
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    """What each PDF becomes (contracts.OUTPUTS); a conf without the key: Markdown only."""

    @classmethod
    def from_params(cls, run_id: str, params: Mapping[str, Any]) -> RunConfig:
        """Checks the schema cannot express; raises ValueError with every problem at once."""
        names = {f.name for f in fields(cls)} - {"run_id"}
        values = {k: params[k] for k in names if k in params}
        values.setdefault("outputs", DEFAULT_OUTPUTS)
        for name in OPTIONAL_URIS:
            if name in values and values[name] is None:
                values[name] = ""  # the form's emptied field
        missing = sorted(names - values.keys())
        if missing:
            raise ValueError(f"missing settings: {', '.join(missing)}")
        problems = []
        uris = {}
        for name in ("input_uri", "output_uri", *OPTIONAL_URIS):
            if name in OPTIONAL_URIS and not values[name]:
                continue
            try:
                uris[name] = S3Uri.parse(values[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        if not values.get("runs_uri") and "output_uri" in uris:
            values["runs_uri"] = runs_uri_for(values["output_uri"])
            uris["runs_uri"] = S3Uri.parse(values["runs_uri"])
        if "input_uri" in uris and "output_uri" in uris and _overlaps(uris["input_uri"], uris["output_uri"]):
            problems.append("output_uri must not be inside input_uri or contain it")
        if "input_uri" in uris and "runs_uri" in uris and _overlaps(uris["input_uri"], uris["runs_uri"]):
            problems.append("runs_uri must not be inside input_uri or contain it")
        problems.extend(_number_problems(cls, values))
        if values.get("backend") not in BACKENDS:
            problems.append(f"backend must be one of {', '.join(BACKENDS)}")
        try:
            values["outputs"] = parse_outputs(values["outputs"] or [])
        except (ValueError, AttributeError, TypeError) as exc:
            problems.append(f"outputs: {exc}" if not str(exc).startswith("outputs") else str(exc))
        if problems:
            raise ValueError("bad run configuration: " + "; ".join(problems))
        return cls(run_id=run_id, **values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def layout(self) -> RunLayout:
        return RunLayout.for_run(self.runs_uri, self.run_id)


def _number_problems(cls: type[RunConfig], values: dict[str, Any]) -> list[str]:
    """Whole numbers must be ints and decimals finite, by the fields' own types. The schema cannot refuse
    3.0 for an integer (JSON Schema counts it as one): a child would read PDF2MD_PDF_TIMEOUT_S=600.0 and
    exit, Batch would refuse the array size after the manifest is written. NaN or Infinity as a budget,
    price or pace would make every budget comparison false. Decimals are stored as floats."""
    problems = []
    for f in fields(cls):
        value = values.get(f.name)
        if f.type == "int" and type(value) is not int:
            problems.append(f"{f.name} must be a whole number, got {value!r}")
        elif f.type == "float":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.append(f"{f.name} must be a finite number, got {value!r}")
            else:
                values[f.name] = float(value)
    return problems


def _overlaps(a: S3Uri, b: S3Uri) -> bool:
    if a.bucket != b.bucket:
        return False
    pa, pb = a.dir_prefix, b.dir_prefix
    return pa.startswith(pb) or pb.startswith(pa)


@dataclass(frozen=True)
class RunState:
    """The run as every task after the first sees it: its settings, its round-0 plan, when it started."""

    config: RunConfig
    plan: Plan
    started_at: float

    def to_xcom(self) -> dict[str, Any]:
        """The one JSON shape a RunState takes between tasks (Airflow stores XComs as JSON)."""
        return {"config": self.config.to_dict(), "plan": self.plan.to_dict(), "started_at": self.started_at}

    @classmethod
    def from_xcom(cls, data: object) -> RunState:
        """The record back from `to_xcom`'s shape; a TypeError or KeyError for anything else."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a run state is a JSON object, got {type(data).__name__}")
        config = {**data["config"], "outputs": tuple(data["config"].get("outputs", DEFAULT_OUTPUTS))}
        return cls(RunConfig(**config), Plan.from_dict(data["plan"]), float(data["started_at"]))

    @property
    def layout(self) -> RunLayout:
        return self.config.layout


class OrderKey:
    """The XCom keys of a round's order (check_budget and check_spend push one XCom per key)."""

    JOB_NAME: Final = "job_name"
    ARRAY_PROPERTIES: Final = "array_properties"
    CONTAINER_OVERRIDES: Final = "container_overrides"
    PRICE_PER_HOUR: Final = "price_per_hour"
    PRICE_SOURCE: Final = "price_source"
    BUDGET_LEFT_USD: Final = "budget_left_usd"


@dataclass(frozen=True)
class RoundOrder:
    """What one round submits (job name, array size, the children's environment) and may spend."""

    job_name: str
    array_size: int
    environment: dict[str, str]
    price_per_hour: float
    budget_left_usd: float
    price_source: str = ""

    def to_xcom(self) -> dict[str, Any]:
        """Keyed as the submit operator's arguments and the wait sensor's settings."""
        return {
            OrderKey.JOB_NAME: self.job_name,
            OrderKey.ARRAY_PROPERTIES: {"size": self.array_size},
            OrderKey.CONTAINER_OVERRIDES: {"environment": [{"name": k, "value": v} for k, v in self.environment.items()]},
            OrderKey.PRICE_PER_HOUR: self.price_per_hour,
            OrderKey.PRICE_SOURCE: self.price_source,
            OrderKey.BUDGET_LEFT_USD: self.budget_left_usd,
        }


def job_settings(config: RunConfig, rnd: int, manifest_uri: str, array_size: int) -> JobSettings:
    """What every child of round `rnd` is told (its environment is `to_env()` of it)."""
    return JobSettings(
        manifest_uri=manifest_uri, output_uri=config.output_uri, run_uri=str(config.layout.run), run_id=config.run_id,
        array_size=array_size, round=rnd, backend=config.backend, pdf_timeout_s=config.pdf_timeout_s,
        pdf_memory_mb=config.pdf_memory_mb, max_pages=config.max_pages, passwords_uri=config.passwords_uri or None,
        outputs=parse_outputs(config.outputs),
    )


def round_order(state: RunState, rnd: int, manifest_uri: str, array_size: int, price_per_hour: float,
                budget_left_usd: float, price_source: str = "") -> RoundOrder:
    """Round `rnd`'s order: the children's environment is the contract's JobSettings."""
    config = state.config
    settings = job_settings(config, rnd, manifest_uri, array_size)
    return RoundOrder(job_name=job_name(config.run_id, rnd), array_size=array_size, environment=settings.to_env(),
                      price_per_hour=price_per_hour, budget_left_usd=budget_left_usd, price_source=price_source)


def preflight(s3: S3Client, config: RunConfig) -> None:
    """What every child would otherwise find only at its start, in every round: the environment it will be
    given must read back (JobSettings.from_env, as the child reads it) and the passwords object must be a
    JSON list of strings. A ValueError naming the problem, before anything is written or submitted."""
    manifest = config.layout.uri(config.layout.shard_manifests_prefix(0))
    env = job_settings(config, 0, manifest, config.array_size).to_env()
    JobSettings.from_env({**env, ENV_ARRAY_INDEX: "0"})
    if config.passwords_uri:
        s3io.read_passwords(s3, config.passwords_uri)
