"""pdf2md_s3_events: convert the PDFs that just arrived, as S3 tells SQS and SQS tells Airflow.

S3 ObjectCreated notifications (filtered to .pdf by terraform) land in an SQS queue; an asset watcher
reads it, and every batch of messages queued before a run starts becomes one run and one array job.
Without PDF2MD_SQS_QUEUE_URL the DAG has no watcher and runs only when triggered with `sqs_messages`
(e.g. to replay a dead-letter queue).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, AssetWatcher, Param, dag

from pdf2md.airflow.params import run_params
from pdf2md.airflow.tasks import check_budget, collect_events, convert_rounds
from pdf2md.contracts import ENV_SQS_QUEUE_URL, MAX_ARRAY_SIZE, MIN_ARRAY_SIZE

QUEUE_URL = os.environ.get(ENV_SQS_QUEUE_URL, "")


def _schedule() -> list[Asset] | None:
    """The SQS watcher, when a queue is configured (an env var: no AWS call at import)."""
    if not QUEUE_URL:
        return None
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    trigger = MessageQueueTrigger(scheme="sqs", sqs_queue=QUEUE_URL, aws_conn_id="aws_default", waiter_delay=5,
                                  max_messages=10, num_batches=10)
    return [Asset("pdf2md_s3_uploads", watchers=[AssetWatcher(name="pdf2md_sqs_uploads", trigger=trigger)])]


@dag(
    dag_id="pdf2md_s3_events",
    schedule=_schedule(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        **run_params(),
        "array_size": Param(10, type="integer", minimum=MIN_ARRAY_SIZE, maximum=MAX_ARRAY_SIZE, title="Array size",
                            description="Batch array children for one burst of uploads (fewer when fewer PDFs)."),
        "sqs_messages": Param([], type="array", title="SQS messages",
                              description="S3 notification messages to convert (normally filled by the SQS watcher)."),
    },
    tags=["pdf2md"],
    doc_md=__doc__,
)
def pdf2md_s3_events() -> None:
    run = collect_events()
    convert_rounds(run, check_budget(run))


pdf2md_s3_events()
