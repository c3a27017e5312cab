"""pdf2md_backfill: convert every PDF under an S3 prefix to Markdown on AWS Batch Spot GPUs.

plan → check_budget → round 0 (submit array job → wait within budget → reduce) → rerun rounds for
retryable failures → report. Runs from the trigger form (only Input and Output need filling in),
with `airflow dags trigger pdf2md_backfill --conf '{...}'`, or the REST API.

**Schedule.** Daily as a catch-up (only what is new or changed gets converted) *only when the
deployment sets both `PDF2MD_INPUT_URI` and `PDF2MD_OUTPUT_URI`*; without them the DAG has no
schedule, so unpausing it starts nothing and no run ever touches the example prefixes by itself.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from pdf2md.airflow.params import catch_up_schedule, run_params
from pdf2md.airflow.tasks import check_budget, convert_rounds, plan_task


@dag(
    dag_id="pdf2md_backfill",
    schedule=catch_up_schedule(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=run_params(),
    tags=["pdf2md"],
    doc_md=__doc__,
)
def pdf2md_backfill() -> None:
    run = plan_task()
    convert_rounds(run, check_budget(run))


pdf2md_backfill()
