"""pdf2md_backfill: convert every PDF under an S3 prefix to Markdown on AWS Batch Spot GPUs.

plan → check_budget → round 0 (submit array job → wait within budget → reduce) → rerun rounds for
retryable failures → report. Runs daily as a catch-up (only what is new or changed gets converted),
from the trigger form, or with `airflow dags trigger pdf2md_backfill --conf '{...}'`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from pdf2md.airflow.params import run_params
from pdf2md.airflow.pipeline import check_budget, convert_rounds, plan


@dag(
    dag_id="pdf2md_backfill",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=run_params(),
    tags=["pdf2md"],
    doc_md=__doc__,
)
def pdf2md_backfill() -> None:
    run = plan()
    convert_rounds(run, check_budget(run))


pdf2md_backfill()
