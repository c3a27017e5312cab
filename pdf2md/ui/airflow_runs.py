"""What Airflow itself knows of a pdf2md run: where its artefacts are, its state, and why it failed.

The facts of the work come from S3 and Batch (pdf2md.status); these come from Airflow's database and
task logs, which the status page (inside the API server) and `pdf2md status` (where Airflow's
configuration is at hand) both read through this module. A run that failed before it wrote anything
(a bad configuration, a Batch queue that does not exist) is known only here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pdf2md.airflow.names import FIRST_TASKS, RETURN_VALUE, TaskId
from pdf2md.contracts import DEFAULT_JOB_QUEUE, DEFAULT_OUTPUT_URI, S3Uri
from pdf2md.run_state import OrderKey, RunState, runs_uri_for

log = logging.getLogger(__name__)

PDF2MD_DAGS = ("pdf2md_backfill", "pdf2md_s3_events")
FAILED = "failed"


@dataclass(frozen=True)
class RunLocation:
    """Where a run's artefacts and jobs are, and the budget and price it runs under."""

    runs_uri: str
    run_id: str
    aws_conn_id: str = "aws_default"
    job_queue: str = DEFAULT_JOB_QUEUE
    budget_usd: float | None = None
    price_per_hour_usd: float | None = None
    outputs: tuple[str, ...] | None = None
    """What the run writes per PDF (contracts.OUTPUTS), where its settings say."""


@dataclass(frozen=True)
class AirflowRun:
    """A DAG run of a pdf2md DAG: its state, where it writes (None when its settings name no valid
    place), and each failed task with the message it failed with, first failure first."""

    dag_id: str
    run_id: str
    state: str
    location: RunLocation | None
    failed_tasks: list[dict[str, str]] = field(default_factory=list)


def find_run(run_id: str, dag_id: str | None = None) -> AirflowRun | None:
    """The pdf2md run with this id (in `dag_id`, or in any pdf2md DAG); None when there is none."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_ids = (dag_id,) if dag_id else PDF2MD_DAGS
    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.run_id == run_id, DagRun.dag_id.in_(dag_ids))).first()
        if run is None:
            return None
        location = _planned_location(session, run.dag_id, run_id) or _location_from_conf(run_id, dict(run.conf or {}))
        return AirflowRun(run.dag_id, run_id, str(run.state), location, _failed_tasks(session, run.dag_id, run_id))


def _planned_location(session: Any, dag_id: str, run_id: str) -> RunLocation | None:
    """Where the run writes, from its first task's RunState (and check_budget's price, once known)."""
    from airflow.models.xcom import XComModel

    tasks = [*FIRST_TASKS, TaskId.CHECK_BUDGET]
    rows = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=tasks)).all()
    values = {(row.task_id, row.key): XComModel.deserialize_value(row) for row in rows}
    first = next((values[(t, RETURN_VALUE)] for t in FIRST_TASKS if (t, RETURN_VALUE) in values), None)
    try:
        config = RunState.from_xcom(first).config
    except (TypeError, KeyError, ValueError):
        return None  # no plan yet, or one written by an older pdf2md: the run's conf says the rest
    price = values.get((TaskId.CHECK_BUDGET, OrderKey.PRICE_PER_HOUR))
    return RunLocation(runs_uri=config.runs_uri, run_id=run_id, aws_conn_id=config.aws_conn_id, job_queue=config.job_queue,
                       budget_usd=config.budget_usd, price_per_hour_usd=float(price) if price else config.price_per_hour_usd,
                       outputs=config.outputs)


def _location_from_conf(run_id: str, conf: dict[str, Any]) -> RunLocation | None:
    """Before (or without) a plan: the run's conf with the DAG's own defaults, as `plan` would read it."""
    try:
        runs = conf.get("runs_uri") or runs_uri_for(conf.get("output_uri") or DEFAULT_OUTPUT_URI)
        S3Uri.parse(runs)
    except ValueError:
        return None
    return RunLocation(runs_uri=runs, run_id=run_id, aws_conn_id=conf.get("aws_conn_id") or "aws_default",
                       job_queue=conf.get("job_queue") or DEFAULT_JOB_QUEUE, budget_usd=conf.get("budget_usd"),
                       outputs=tuple(conf["outputs"]) if isinstance(conf.get("outputs"), list) else None)


def _failed_tasks(session: Any, dag_id: str, run_id: str) -> list[dict[str, str]]:
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    failed = session.scalars(select(TaskInstance).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.state == FAILED)).all()
    failed = sorted(failed, key=lambda ti: (ti.end_date is None, ti.end_date))
    return [{"task_id": ti.task_id, "message": failure_message(ti)} for ti in failed]


def failure_message(ti: Any) -> str:
    """The exception the task failed with, from its log (local or remote, as Airflow reads it)."""
    from airflow.utils.log.log_reader import TaskLogReader

    try:
        lines, _ = TaskLogReader().read_log_chunks(ti, ti.try_number, {"end_of_log": False})
        errors = [line.model_dump() for line in lines if getattr(line, "level", None) == "error"]
    except Exception as exc:  # noqa: BLE001 - a log that cannot be read must not hide the failure itself
        log.warning("cannot read the log of %s: %s", ti.task_id, exc)
        errors = []
    for event in reversed(errors):
        details = event.get("error_detail")
        if isinstance(details, list) and details and isinstance(details[0], dict):  # [raised, its causes...]
            return f"{details[0].get('exc_type', 'Error')}: {details[0].get('exc_value', '')}"
    return str(errors[-1]["event"]) if errors else "failed (no error in its log; see the task's log in Airflow)"
