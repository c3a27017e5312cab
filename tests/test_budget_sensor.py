"""The budget-aware wait on its own, as the provider tests its Batch sensor and triggers: the decision
table, the trigger's serialize() round trip and its run loop, and the sensor's outcomes, with a Batch
client that answers from a script (no emulator, no Airflow database)."""

from __future__ import annotations

import asyncio
import importlib
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
from airflow.triggers.base import TriggerEvent

from pdf2md.airflow.budget_sensor import (
    DEFAULT_MAX_POLLS,
    OVER_BUDGET,
    BatchBudgetSensor,
    BatchBudgetTrigger,
    JobSpend,
    decide,
)
from pdf2md.airflow.names import USAGE_KEY
from pdf2md.batch import JobUsage
from pdf2md.s3 import RETRY_CONFIG

JOB = "job-1"
HOUR_MS = 3_600_000


def _usage(status: str, seconds: float, children: int = 2, failed: int = 0, succeeded: int = 0) -> JobUsage:
    return JobUsage(status=status, children=children, failed=failed, succeeded=succeeded, seconds=seconds)


@pytest.mark.parametrize(("status", "seconds", "budget", "expected"), [
    ("RUNNING", 1800, 1.0, None),            # $0.50 of $1.00: keep waiting
    ("RUNNING", 3600, 1.0, None),            # exactly the budget is still within it
    ("RUNNING", 3601, 1.0, OVER_BUDGET),     # past it: stop
    ("RUNNABLE", 0, 0.0, None),              # nothing spent yet, even with nothing left
    ("SUCCEEDED", 7200, 1.0, "SUCCEEDED"),   # finished: reported as finished, over budget or not
    ("FAILED", 10, 1.0, "FAILED"),
])
def test_decide(status: str, seconds: float, budget: float, expected: str | None) -> None:
    found = decide(JOB, _usage(status, seconds), price_per_hour=1.0, budget_left_usd=budget)
    assert (found.status if found else None) == expected
    if found:
        assert (found.job_id, found.instance_seconds, found.cost_usd) == (JOB, seconds, pytest.approx(seconds / 3600))


def test_job_spend_round_trips_through_its_event_payload() -> None:
    spent = JobSpend(job_id=JOB, status=OVER_BUDGET, instance_seconds=12.5, cost_usd=0.25, children=3, failed=1, succeeded=1)
    assert JobSpend.from_dict(spent.to_dict()) == spent and spent.over_budget
    assert set(spent.to_dict()) == {"job_id", "status", "instance_seconds", "cost_usd", "children", "failed", "succeeded"}


def test_trigger_serialize_round_trip() -> None:
    trigger = BatchBudgetTrigger(JOB, 0.5, 2.0, 7.0, aws_conn_id="my_aws", region_name="eu-west-1", verify=False,
                                 botocore_config={"read_timeout": 5})
    classpath, kwargs = trigger.serialize()
    assert classpath == "pdf2md.airflow.budget_sensor.BatchBudgetTrigger"
    assert kwargs == {"job_id": JOB, "price_per_hour": 0.5, "budget_left_usd": 2.0, "poll_interval_s": 7.0,
                      "aws_conn_id": "my_aws", "region_name": "eu-west-1", "verify": False, "botocore_config": {"read_timeout": 5}}
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)  # as the triggerer rebuilds it
    assert again.serialize() == (classpath, kwargs)


class ScriptedBatch:
    """describe_jobs answers from a list of (parent status, children's attempt seconds) steps, one per poll."""

    def __init__(self, steps: list[tuple[str, list[float]]]) -> None:
        self.steps = steps
        self.polls = 0
        self.step = steps[0]
        self.terminated: list[str] = []

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        if jobs == [JOB]:  # a poll starts with the parent, then asks for its children
            self.step = self.steps[min(self.polls, len(self.steps) - 1)]
            self.polls += 1
        status, seconds = self.step
        if jobs == [JOB]:
            return {"jobs": [{"jobId": JOB, "status": status, "arrayProperties": {"size": len(seconds)}}]}
        return {"jobs": [{"jobId": job, "status": status, "attempts": [{"startedAt": 1, "stoppedAt": 1 + int(s * 1000)}]}
                         for job, s in zip(jobs, seconds)]}

    def terminate_job(self, jobId: str, reason: str) -> None:  # noqa: N803 - boto3's parameter name
        self.terminated.append(jobId)


async def _events(trigger: BatchBudgetTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


def test_trigger_polls_until_the_job_ends_and_fires_once(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = ScriptedBatch([("RUNNING", [10, 10]), ("RUNNING", [20, 20]), ("SUCCEEDED", [30, 30])])
    trigger = BatchBudgetTrigger(JOB, price_per_hour=3.6, budget_left_usd=100.0, poll_interval_s=0)
    monkeypatch.setattr(trigger, "client", lambda: batch)
    events = asyncio.run(_events(trigger))
    assert batch.polls == 3
    assert events == [TriggerEvent({"job_id": JOB, "status": "SUCCEEDED", "instance_seconds": 60.0, "cost_usd": 0.06,
                                    "children": 2, "failed": 0, "succeeded": 2})]


def test_trigger_fires_over_budget_while_the_job_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = ScriptedBatch([("RUNNING", [100, 100]), ("RUNNING", [600, 600]), ("SUCCEEDED", [900, 900])])
    trigger = BatchBudgetTrigger(JOB, price_per_hour=3.6, budget_left_usd=1.0, poll_interval_s=0)
    monkeypatch.setattr(trigger, "client", lambda: batch)
    (event,) = asyncio.run(_events(trigger))
    assert event.payload["status"] == OVER_BUDGET and event.payload["cost_usd"] == pytest.approx(1.2)
    assert batch.polls == 2


def _sensor(**kwargs: Any) -> BatchBudgetSensor:
    settings: dict[str, Any] = {"task_id": "wait", "job_id": JOB, "price_per_hour": "3.6", "budget_left_usd": "1.0",
                                "poll_interval_s": "2", **kwargs}
    return BatchBudgetSensor(**settings)


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_sensor_follows_the_providers_conventions() -> None:
    sensor = _sensor(aws_conn_id="my_aws", region_name="eu-west-1", verify="/ca.pem")
    assert {"aws_conn_id", "region_name", "verify", "job_id", "price_per_hour", "budget_left_usd",
            "poll_interval_s"} <= set(sensor.template_fields)
    assert (sensor.hook.aws_conn_id, sensor.hook.region_name, sensor.hook.verify) == ("my_aws", "eu-west-1", "/ca.pem")
    # botocore rewrites a Config's retries in place once a client uses it: compare the object, not its dict
    assert sensor.hook.config is RETRY_CONFIG, "the project's retry configuration"


def test_deferring_hands_the_trigger_its_settings_and_a_timeout_derived_from_them() -> None:
    sensor = _sensor(aws_conn_id="my_aws", region_name="eu-west-1", max_polls=100)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.timeout == timedelta(seconds=100 * 2 + 60)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = deferred.value.trigger.serialize()
    assert (kwargs["job_id"], kwargs["price_per_hour"], kwargs["budget_left_usd"], kwargs["poll_interval_s"]) == (JOB, 3.6, 1.0, 2.0)
    assert (kwargs["aws_conn_id"], kwargs["region_name"]) == ("my_aws", "eu-west-1")
    with pytest.raises(TaskDeferred) as default:
        _sensor().execute({})
    assert default.value.timeout == timedelta(seconds=DEFAULT_MAX_POLLS * 2 + 60)
    with pytest.raises(TaskDeferred) as explicit:
        _sensor(timeout=600).execute({})
    assert explicit.value.timeout == timedelta(seconds=600), "the sensor's own timeout, when given, wins"


def _complete(sensor: BatchBudgetSensor, status: str, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeTI, ScriptedBatch, Any]:
    batch = ScriptedBatch([("RUNNING", [0, 0])])
    monkeypatch.setattr(BatchBudgetSensor, "hook", type("Hook", (), {"conn": batch})())
    ti = FakeTI()
    event = JobSpend(job_id=JOB, status=status, instance_seconds=4000, cost_usd=4.0, children=2, failed=1, succeeded=1).to_dict()
    try:
        outcome: Any = sensor.execute_complete({"ti": ti}, event)  # type: ignore[arg-type]  # a Context needs only "ti" here
    except AirflowException as exc:
        outcome = exc
    return ti, batch, outcome


def test_over_budget_terminates_the_job_and_fails_without_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    ti, batch, outcome = _complete(_sensor(), OVER_BUDGET, monkeypatch)
    assert isinstance(outcome, AirflowFailException) and "budget exceeded: this round spent $4.0000" in str(outcome)
    assert batch.terminated == [JOB]
    assert ti.pushed[USAGE_KEY]["status"] == OVER_BUDGET, "the spend is pushed even though the task fails"


def test_a_failed_child_fails_the_wait_for_a_retry_round(monkeypatch: pytest.MonkeyPatch) -> None:
    ti, batch, outcome = _complete(_sensor(), "FAILED", monkeypatch)
    assert type(outcome) is AirflowException and "1 of 2 array children failed" in str(outcome)
    assert batch.terminated == [] and ti.pushed[USAGE_KEY]["instance_seconds"] == 4000


def test_success_returns_and_pushes_the_spend(monkeypatch: pytest.MonkeyPatch) -> None:
    ti, _, outcome = _complete(_sensor(), "SUCCEEDED", monkeypatch)
    assert outcome == ti.pushed[USAGE_KEY] and outcome["status"] == "SUCCEEDED"


def test_poke_mode_waits_through_the_same_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = ScriptedBatch([("RUNNING", [1, 1]), ("SUCCEEDED", [2, 2])])
    monkeypatch.setattr(BatchBudgetSensor, "hook", type("Hook", (), {"conn": batch})())
    sensor = _sensor(deferrable=False, poll_interval_s="0", budget_left_usd="100")
    ti = FakeTI()
    result = sensor.execute({"ti": ti})  # type: ignore[arg-type]  # a Context needs only "ti" here
    assert batch.polls == 2 and result["status"] == "SUCCEEDED" and ti.pushed[USAGE_KEY] == result
    assert sensor.timeout == DEFAULT_MAX_POLLS * 0 + 60
