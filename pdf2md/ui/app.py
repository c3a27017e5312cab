"""The run status page: a FastAPI app that Airflow's API server mounts at /pdf2md.

plugins/pdf2md_plugin.py registers it (`fastapi_apps`) and links it from every DAG run's page
(`external_views`, destination `dag_run`) and from the navigation. The page is one static HTML file
that polls `api/runs/<dag>/<run>`, whose facts come from pdf2md.status, i.e. from S3 and Batch only.
Airflow's database is read for one thing: where the run's artefacts are and what it may spend (the
`plan` task's XCom, which holds the run's validated configuration).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from pdf2md.contracts import DEFAULT_JOB_QUEUE
from pdf2md.status import run_status

URL_PREFIX = "/pdf2md"
STATIC = Path(__file__).parent / "static"
PLAN_TASKS = ("plan", "collect_events")
"""The first task of each pdf2md DAG: its XCom is the run's configuration."""
PDF2MD_DAGS = ("pdf2md_backfill", "pdf2md_s3_events")
RECENT_RUNS = 50


@dataclass(frozen=True)
class RunLocation:
    """Where a run's artefacts and jobs are, and the budget and price it runs under."""

    runs_uri: str
    run_id: str
    aws_conn_id: str = "aws_default"
    job_queue: str = DEFAULT_JOB_QUEUE
    budget_usd: float | None = None
    price_per_hour_usd: float | None = None


def locate_run(dag_id: str, run_id: str) -> RunLocation:
    """The run's configuration from its plan task's XCom; 404 before planning or for other DAGs."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=[*PLAN_TASKS, "check_budget"])).all()
        values = {(row.task_id, row.key): XComModel.deserialize_value(row) for row in rows}
    config = next((values[(t, "return_value")] for t in PLAN_TASKS if (t, "return_value") in values), None)
    if not isinstance(config, dict) or "runs_uri" not in config:
        raise HTTPException(404, f"{dag_id} run {run_id} has no pdf2md plan yet (not a pdf2md run, or still queued)")
    price = values.get(("check_budget", "price_per_hour"))
    return RunLocation(
        runs_uri=config["runs_uri"], run_id=run_id, aws_conn_id=config.get("aws_conn_id") or "aws_default",
        job_queue=config.get("job_queue") or DEFAULT_JOB_QUEUE, budget_usd=config.get("budget_usd"),
        price_per_hour_usd=float(price) if price else config.get("price_per_hour_usd"),
    )


def aws_clients(conn_id: str) -> tuple[Any, Any]:
    """S3 and Batch clients of the run's Airflow connection, as the tasks themselves make them."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    from pdf2md.s3 import RETRY_CONFIG

    def client(kind: str) -> Any:
        return AwsBaseHook(aws_conn_id=conn_id, client_type=kind, config=RETRY_CONFIG).conn

    return client("s3"), client("batch")


def recent_runs(dag_id: str) -> list[dict[str, Any]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(RECENT_RUNS)).all()
        return [{"dag_id": r.dag_id, "run_id": r.run_id, "state": str(r.state),
                 "start_date": r.start_date.isoformat() if r.start_date else None} for r in runs]


def can_read_runs() -> Any:
    """Airflow's own check: the caller (session cookie or bearer token) may read this DAG's runs."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity.RUN)


def page(request: Request) -> HTMLResponse:
    """The single page; its data comes from the JSON endpoint, its paths from where it is mounted."""
    html = (STATIC / "status.html").read_text(encoding="utf-8")
    return HTMLResponse(html.replace("{{BASE}}", request.scope.get("root_path", "").rstrip("/")))


def create_app(authorize: Any = None) -> FastAPI:
    """The app the plugin mounts. `authorize` is a FastAPI dependency; Airflow's DAG-run read
    permission by default (tests of the data alone pass a no-op)."""
    auth = Depends(authorize or can_read_runs())
    app = FastAPI(title="pdf2md run status", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/", page, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/runs/{dag_id}/{run_id}", page, methods=["GET"], response_class=HTMLResponse)

    @app.get("/api/runs", dependencies=[auth])
    def runs(dag_id: str = PDF2MD_DAGS[0]) -> list[dict[str, Any]]:
        return recent_runs(dag_id)

    @app.get("/api/runs/{dag_id}/{run_id}", dependencies=[auth])
    def status(dag_id: str, run_id: str) -> dict[str, Any]:
        where = app.state.locate(dag_id, run_id)
        s3, batch = app.state.clients(where.aws_conn_id)
        return run_status(s3, batch, where.runs_uri, where.run_id, budget_usd=where.budget_usd,
                          price_per_hour_usd=where.price_per_hour_usd, job_queue=where.job_queue)

    app.state.locate = locate_run
    app.state.clients = aws_clients
    return app
