"""Waiting for an array job while watching what it costs: a deferrable sensor and its trigger.

The provider's BatchSensor only watches the parent's status; this one also sums the children's
attempt time on every poll, so a run that crosses its budget is stopped while it is running. It is
built as the provider builds its AWS sensors: `AwsBaseSensor` with a `BatchClientHook` (connection,
region, verify and botocore config as the provider's sensors take them), `aws_template_fields`, and a
wait bounded by its own settings (`max_polls` × the poll interval). `decide` holds the whole decision
and needs no AWS; the trigger only polls and hands over what `decide` returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import Context, XComArg
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.config import Config

from pdf2md import batch as batch_api
from pdf2md.airflow.names import USAGE_KEY
from pdf2md.budget import Price, spend
from pdf2md.contracts import Record
from pdf2md.s3 import RETRY_CONFIG

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient

OVER_BUDGET = "OVER_BUDGET"
"""The status a JobSpend takes when the job was still running and its spend passed the budget."""
DEFAULT_POLL_INTERVAL_S = 30
DEFAULT_MAX_POLLS = 20_160
"""Polls before the wait gives up: a week at the default 30 s, 5.6 hours at 1 s."""
TIMEOUT_GRACE_S = 60
"""Added to max_polls × the interval: the last poll's own time."""


@dataclass(frozen=True)
class JobSpend(Record):
    """What one poll found: the job's status (or OVER_BUDGET) and what its children have used so far."""

    job_id: str
    status: str
    instance_seconds: float
    cost_usd: float
    children: int
    failed: int
    succeeded: int

    @property
    def over_budget(self) -> bool:
        return self.status == OVER_BUDGET


def decide(job_id: str, use: batch_api.JobUsage, price_per_hour: float, budget_left_usd: float) -> JobSpend | None:
    """A JobSpend once the job is finished or over budget; None while it runs within it.

    A finished job is reported as finished even when its last poll found it over budget: there is
    nothing left to stop, and the report tells the spend.
    """
    cost = spend(use.seconds, Price(price_per_hour, ""))
    found = JobSpend(job_id=job_id, status=use.status, instance_seconds=use.seconds, cost_usd=cost,
                     children=use.children, failed=use.failed, succeeded=use.succeeded)
    if use.status in batch_api.TERMINAL:
        return found
    if cost > budget_left_usd:
        return replace(found, status=OVER_BUDGET)
    return None


def client_config(botocore_config: dict[str, Any] | None) -> Config:
    """The project's retry configuration, under the caller's own botocore settings."""
    return RETRY_CONFIG.merge(Config(**botocore_config)) if botocore_config else RETRY_CONFIG


Templated: TypeAlias = "float | str | XComArg"
"""A setting given as a value, a Jinja template, or another task's output: a value once rendered."""


def rendered(value: Templated, name: str) -> float:
    """A templated number after rendering (Jinja renders to text)."""
    if isinstance(value, (int, float, str)):
        return float(value)
    raise TypeError(f"{name} was not rendered: {value!r}")


class BatchBudgetTrigger(BaseTrigger):
    """Polls the array job and its spend; fires (once) when it ends or when its spend passes the budget.

    :param job_id: the Batch job to watch
    :param price_per_hour: instance price in USD per hour
    :param budget_left_usd: what the job may spend
    :param poll_interval_s: seconds between polls
    :param aws_conn_id: the Airflow connection for AWS
    :param region_name: AWS region (default: the connection's)
    :param verify: whether to verify SSL certificates, or a CA bundle path
    :param botocore_config: botocore client settings, over the project's retry configuration
    """

    def __init__(self, job_id: str, price_per_hour: float, budget_left_usd: float, poll_interval_s: float,
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 verify: bool | str | None = None, botocore_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.price_per_hour = price_per_hour
        self.budget_left_usd = budget_left_usd
        self.poll_interval_s = poll_interval_s
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "job_id": self.job_id, "price_per_hour": self.price_per_hour, "budget_left_usd": self.budget_left_usd,
            "poll_interval_s": self.poll_interval_s, "aws_conn_id": self.aws_conn_id, "region_name": self.region_name,
            "verify": self.verify, "botocore_config": self.botocore_config})

    def client(self) -> BatchClient:
        """A blocking boto3 client: each poll runs in a thread, off the triggerer's event loop."""
        hook = BatchClientHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                               config=client_config(self.botocore_config))
        return hook.conn

    def check(self, batch: BatchClient) -> JobSpend | None:
        return decide(self.job_id, batch_api.usage(batch, self.job_id), self.price_per_hour, self.budget_left_usd)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        batch = await asyncio.to_thread(self.client)
        while True:
            found = await asyncio.to_thread(self.check, batch)
            if found is not None:
                yield TriggerEvent(found.to_dict())
                return
            await asyncio.sleep(self.poll_interval_s)


class BatchBudgetSensor(AwsBaseSensor[BatchClientHook]):
    """Wait for an AWS Batch (array) job within a budget; terminate it and fail when it is passed.

    Pushes the last JobSpend under the XCom key `usage` whether the wait succeeds or fails, so later
    tasks can add up the run's spend.

    :param job_id: the job to wait for (templated; usually the submit task's XCom)
    :param price_per_hour: instance price in USD per hour (templated)
    :param budget_left_usd: what this job may spend (templated)
    :param poll_interval_s: seconds between checks (templated)
    :param max_polls: checks before the wait times out; the timeout is max_polls × poll_interval_s + 60 s
        unless the sensor's own `timeout` is given
    :param deferrable: wait in the triggerer instead of holding a worker slot
    :param aws_conn_id: the Airflow connection for AWS (templated)
    :param region_name: AWS region; default: the connection's (templated)
    :param verify: whether to verify SSL certificates, or a CA bundle path (templated)
    :param botocore_config: botocore client settings, over the project's retry configuration
    """

    aws_hook_class = BatchClientHook
    template_fields: Sequence[str] = aws_template_fields("job_id", "price_per_hour", "budget_left_usd", "poll_interval_s")
    ui_color = "#f0e4d7"

    def __init__(self, *, job_id: str | XComArg, price_per_hour: Templated, budget_left_usd: Templated,
                 poll_interval_s: Templated = DEFAULT_POLL_INTERVAL_S, max_polls: int = DEFAULT_MAX_POLLS,
                 deferrable: bool = True, **kwargs: Any) -> None:
        self._timeout_given = kwargs.get("timeout") is not None
        super().__init__(**kwargs)
        self.job_id = job_id
        self.price_per_hour = price_per_hour
        self.budget_left_usd = budget_left_usd
        self.poll_interval_s = poll_interval_s
        self.max_polls = max_polls
        self.deferrable = deferrable

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        return {**super()._hook_parameters, "config": client_config(self.botocore_config)}

    def wait_timeout(self) -> timedelta:
        """How long the wait may last: the sensor's `timeout` when given, else derived from its settings."""
        if self._timeout_given:
            return timedelta(seconds=float(self.timeout))
        return timedelta(seconds=self.max_polls * rendered(self.poll_interval_s, "poll_interval_s") + TIMEOUT_GRACE_S)

    def trigger(self) -> BatchBudgetTrigger:
        """The trigger for this wait's rendered settings (the poke mode polls through it as well)."""
        return BatchBudgetTrigger(str(self.job_id), rendered(self.price_per_hour, "price_per_hour"),
                                  rendered(self.budget_left_usd, "budget_left_usd"),
                                  rendered(self.poll_interval_s, "poll_interval_s"), aws_conn_id=self.aws_conn_id,
                                  region_name=self.region_name, verify=self.verify, botocore_config=self.botocore_config)

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            self.defer(trigger=self.trigger(), method_name="execute_complete", timeout=self.wait_timeout())
        self.poke_interval = rendered(self.poll_interval_s, "poll_interval_s")
        self.timeout = self.wait_timeout().total_seconds()
        return super().execute(context)

    def poke(self, context: Context) -> PokeReturnValue:
        found = self.trigger().check(self.hook.conn)
        if found is None:
            self.log.info("job %s running within budget", self.job_id)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self.execute_complete(context, found.to_dict()))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        found = JobSpend.from_dict(event)
        context["ti"].xcom_push(key=USAGE_KEY, value=found.to_dict())
        if found.over_budget:
            stopped = batch_api.terminate(self.hook.conn, [found.job_id], "pdf2md: run over budget")
            raise AirflowFailException(
                f"budget exceeded: this round spent ${found.cost_usd:.4f} "
                f"({found.instance_seconds / 3600:.3f} instance-hours × ${rendered(self.price_per_hour, 'price_per_hour'):.4f}/h), "
                f"more than the ${rendered(self.budget_left_usd, 'budget_left_usd'):.4f} left of the run's budget; "
                f"terminated {len(stopped)} job(s)")
        if found.status == "FAILED":
            raise AirflowException(
                f"{found.failed} of {found.children} array children failed; the reduce step reruns the retryable PDFs")
        self.log.info("job %s succeeded: %.1f instance-seconds, $%.4f", found.job_id, found.instance_seconds, found.cost_usd)
        return found.to_dict()
