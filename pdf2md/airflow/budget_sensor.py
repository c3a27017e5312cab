"""Waiting for an array job while watching what it costs: a deferrable sensor and its trigger.

The provider's BatchSensor only watches the parent's status; this one also sums the children's
attempt time on every poll, so a run that crosses its budget is stopped while it is running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from pdf2md import batch as batch_api
from pdf2md.budget import Price, spend
from pdf2md.s3 import RETRY_CONFIG

OVER_BUDGET = "OVER_BUDGET"


def batch_client(aws_conn_id: str | None) -> Any:
    """The Batch client of the Airflow connection (endpoint, region and credentials come from it)."""
    return AwsBaseHook(aws_conn_id=aws_conn_id, client_type="batch", config=RETRY_CONFIG).conn


def _check(batch: Any, job_id: str, price_per_hour: float, budget_left_usd: float) -> dict[str, Any] | None:
    """An event once the job is finished or over budget; None while it runs within it."""
    use = batch_api.usage(batch, job_id)
    cost = spend(use.seconds, Price(price_per_hour, ""))
    event = {"job_id": job_id, "status": use.status, "instance_seconds": use.seconds, "cost_usd": cost,
             "children": use.children, "failed": use.failed, "succeeded": use.succeeded}
    if use.status in batch_api.TERMINAL:
        return event
    if cost > budget_left_usd:
        return {**event, "status": OVER_BUDGET}
    return None


class BatchBudgetTrigger(BaseTrigger):
    """Polls the array job and its spend; fires when it ends or when its spend passes the budget."""

    def __init__(self, job_id: str, price_per_hour: float, budget_left_usd: float, poll_interval_s: float,
                 aws_conn_id: str | None = "aws_default") -> None:
        super().__init__()
        self.job_id = job_id
        self.price_per_hour = price_per_hour
        self.budget_left_usd = budget_left_usd
        self.poll_interval_s = poll_interval_s
        self.aws_conn_id = aws_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "job_id": self.job_id, "price_per_hour": self.price_per_hour, "budget_left_usd": self.budget_left_usd,
            "poll_interval_s": self.poll_interval_s, "aws_conn_id": self.aws_conn_id})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        batch = await asyncio.to_thread(batch_client, self.aws_conn_id)
        while True:
            event = await asyncio.to_thread(_check, batch, self.job_id, self.price_per_hour, self.budget_left_usd)
            if event is not None:
                yield TriggerEvent(event)
                return
            await asyncio.sleep(self.poll_interval_s)


class BatchBudgetSensor(BaseOperator):
    """Wait for an AWS Batch (array) job within a budget; terminate it and fail when it is passed.

    :param job_id: the job to wait for (templated; usually the submit task's XCom)
    :param price_per_hour: instance price in USD per hour (templated)
    :param budget_left_usd: what this job may spend (templated)
    :param poll_interval_s: seconds between checks
    :param aws_conn_id: the Airflow connection for AWS
    :param deferrable: wait in the triggerer instead of holding a worker slot
    """

    template_fields: Sequence[str] = ("job_id", "price_per_hour", "budget_left_usd", "poll_interval_s", "aws_conn_id")
    ui_color = "#f0e4d7"

    def __init__(self, *, job_id: str, price_per_hour: float | str, budget_left_usd: float | str,
                 poll_interval_s: float | str = 30, aws_conn_id: str | None = "aws_default", deferrable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.price_per_hour = price_per_hour
        self.budget_left_usd = budget_left_usd
        self.poll_interval_s = poll_interval_s
        self.aws_conn_id = aws_conn_id
        self.deferrable = deferrable

    def execute(self, context: Context) -> dict[str, Any]:
        if self.deferrable:
            self.defer(
                trigger=BatchBudgetTrigger(self.job_id, float(self.price_per_hour), float(self.budget_left_usd),
                                           float(self.poll_interval_s), self.aws_conn_id),
                method_name="execute_complete",
                timeout=timedelta(days=7),
            )
        batch = batch_client(self.aws_conn_id)
        while (event := _check(batch, self.job_id, float(self.price_per_hour), float(self.budget_left_usd))) is None:
            self.log.info("job %s running within budget", self.job_id)
            time.sleep(float(self.poll_interval_s))
        return self.execute_complete(context, event)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        context["ti"].xcom_push(key="usage", value=event)
        if event["status"] == OVER_BUDGET:
            stopped = batch_api.terminate(batch_client(self.aws_conn_id), [event["job_id"]], "pdf2md: run over budget")
            raise AirflowFailException(
                f"budget exceeded: this round spent ${event['cost_usd']:.4f} "
                f"({event['instance_seconds'] / 3600:.3f} instance-hours × ${float(self.price_per_hour):.4f}/h), more than the "
                f"${float(self.budget_left_usd):.4f} left of the run's budget; terminated {len(stopped)} job(s)")
        if event["status"] == "FAILED":
            raise AirflowException(
                f"{event['failed']} of {event['children']} array children failed; the reduce step reruns the retryable PDFs")
        self.log.info("job %s succeeded: %.1f instance-seconds, $%.4f", event["job_id"], event["instance_seconds"], event["cost_usd"])
        return event
