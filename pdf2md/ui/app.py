"""The run status page: a FastAPI app that Airflow's API server mounts at /pdf2md.

plugins/pdf2md_plugin.py registers it (`fastapi_apps`) and links it from every DAG run's page
(`external_views`, destination `dag_run`) and from the navigation. The page is one static HTML file
that polls `api/runs/<dag>/<run>`, whose facts come from pdf2md.status, i.e. from S3 and Batch: each
round as an aggregate of its shards, and one round's per-shard rows, a page at a time, on demand.
Airflow is read (pdf2md.ui.airflow_runs) for where the run's artefacts are and what it may spend,
and for whether it failed, in which task and why: a run that failed before writing anything has
nothing else to show.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from pdf2md.status import ShardTable, empty_status, run_status, with_airflow_outcome
from pdf2md.ui.airflow_runs import PDF2MD_DAGS, AirflowRun, find_run

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_s3 import S3Client

URL_PREFIX = "/pdf2md"
STATIC = Path(__file__).parent / "static"
RECENT_RUNS = 50
SHARD_PAGE_MAX = 500
"""Most per-shard rows one refresh carries: the page pages through a 10,000-shard round."""


def locate_run(dag_id: str, run_id: str) -> AirflowRun:
    """The run as Airflow knows it; 404 for runs of other DAGs."""
    run = find_run(run_id, dag_id) if dag_id in PDF2MD_DAGS else None
    if run is None:
        raise HTTPException(404, f"{dag_id} run {run_id} is not a pdf2md run")
    return run


def aws_clients(conn_id: str) -> tuple[S3Client, BatchClient]:
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
    def status(dag_id: str, run_id: str, shards_round: int | None = Query(None, ge=0),
               shards_offset: int = Query(0, ge=0), shards_limit: int = Query(100, ge=1, le=SHARD_PAGE_MAX)) -> dict[str, Any]:
        """The run's facts: each round's aggregate, plus a page of one round's per-shard rows when
        `shards_round` asks for them (the page's "show shards")."""
        run = app.state.locate(dag_id, run_id)
        table = ShardTable(shards_round, shards_offset, shards_limit) if shards_round is not None else None
        where = run.location
        if where is None:
            facts = empty_status(run_id, None)
        else:
            s3, batch = app.state.clients(where.aws_conn_id)
            facts = run_status(s3, batch, where.runs_uri, run_id, budget_usd=where.budget_usd,
                               price_per_hour_usd=where.price_per_hour_usd, job_queue=where.job_queue,
                               shard_table=table, outputs=where.outputs)
        return with_airflow_outcome(facts, run.state, run.failed_tasks)

    app.state.locate = locate_run
    app.state.clients = aws_clients
    return app
