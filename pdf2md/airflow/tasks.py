"""The tasks of a conversion run, shared by the backfill DAG and the S3-event DAG.

plan → check_budget → round 0 (submit → wait within budget → reduce) → round 1..N (check_spend →
submit → wait → reduce) → report. The first task returns the run's RunState (pdf2md.run_state);
every later task reads it back with `RunState.from_xcom`. The logic lives in pdf2md's plain
modules (plan, reduce, report, budget); these functions only wire it to Airflow. Task ids and XCom
keys come from pdf2md.airflow.names; the Python names end in `_task` where a plain module holds
the same verb.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.links.batch import BatchJobDetailsLink
from airflow.providers.amazon.aws.operators.batch import BatchOperator
from airflow.sdk import Context, TaskGroup, XComArg, get_current_context, task
from airflow.sdk.definitions.xcom_arg import PlainXComArg
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pdf2md import batch as batch_api
from pdf2md import s3 as s3io
from pdf2md.airflow.budget_sensor import BatchBudgetSensor, JobSpend
from pdf2md.airflow.names import USAGE_KEY, TaskId, round_group, round_task_id
from pdf2md.airflow.params import MAX_RERUN_ROUNDS
from pdf2md.budget import Price, estimate, estimate_pages, spend, spot_price
from pdf2md.contracts import RoundSummary, RunLayout, RunReport, RunStatus, S3Uri
from pdf2md.events import entries_from_messages
from pdf2md.plan import drop_collisions, plan_round, record_collisions, write_manifest
from pdf2md.reduce import failures_of_run, reduce_round
from pdf2md.report import STOPPED, build_report, format_report, halted_report, settle
from pdf2md.run_state import OrderKey, RunConfig, RunState, preflight, round_order
from pdf2md.s3 import RETRY_CONFIG

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

RunArg: TypeAlias = "XComArg | Mapping[str, Any] | None"
"""A task's `run` argument: the first task's output when the DAG is built, its RunState.to_xcom()
dict when the task runs, None when the first task failed (the all_done tasks still run)."""


def _client(conn_id: str, service: str) -> Any:
    """A boto3 client from the Airflow connection, with the project's retry configuration."""
    return AwsBaseHook(aws_conn_id=conn_id, client_type=service, config=RETRY_CONFIG).conn


def s3_client(config: RunConfig) -> S3Client:
    return _client(config.aws_conn_id, "s3")


def batch_client(config: RunConfig) -> BatchClient:
    return _client(config.aws_conn_id, "batch")


def ec2_client(config: RunConfig) -> EC2Client:
    return _client(config.aws_conn_id, "ec2")


def halt(state: RunState, status: RunStatus, message: str) -> None:
    """Record why the run stops here (the report task completes it with the numbers), then fail."""
    layout = state.layout
    s3io.put_json(s3_client(state.config), layout.run.bucket, layout.report_key, halted_report(state, status, message))
    raise AirflowFailException(message)


def _config(context: Context) -> RunConfig:
    """The run's settings, and what the children would otherwise find wrong only at their start
    (run_state.preflight): a failed first task, before anything is written."""
    try:
        config = RunConfig.from_params(context["run_id"], dict(context["params"]))
        preflight(s3_client(config), config)
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None
    return config


@task(task_id=TaskId.PLAN)
def plan_task() -> dict[str, Any]:
    """Validate the run's settings, list the input, write round 0's manifest."""
    config = _config(get_current_context())
    started = time.time()
    plan = plan_round(s3_client(config), config.layout, config.input_uri, config.output_uri, config.array_size,
                      retry_failed=config.retry_failed, run_id=config.run_id, inventory_uri=config.inventory_uri or None,
                      outputs=config.outputs)
    return RunState(config, plan, started).to_xcom()


@task(task_id=TaskId.COLLECT_EVENTS)
def collect_events() -> dict[str, Any]:
    """The new PDFs named by the S3 notifications that triggered this run, as round 0's manifest.

    Messages come from the SQS asset watcher, or from the `sqs_messages` Param (replaying a DLQ).
    """
    context = get_current_context()
    config = _config(context)
    messages = list(context["params"].get("sqs_messages") or [])
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            messages.extend((event.extra or {}).get("payload", {}).get("message_batch", []))
    started = time.time()
    entries, refused = drop_collisions(entries_from_messages(messages, S3Uri.parse(config.input_uri)))
    log.info("%d message(s) → %d new PDF(s)", len(messages), len(entries))
    s3 = s3_client(config)
    record_collisions(s3, config.layout, refused, config.run_id)
    plan = write_manifest(s3, config.layout, entries, config.array_size, 0, collisions=len(refused))
    return RunState(config, plan, started).to_xcom()


@task(task_id=TaskId.CHECK_BUDGET, multiple_outputs=True)
def check_budget(run: RunArg) -> dict[str, Any]:
    """Pre-flight: the estimate must fit the budget before anything is submitted."""
    state = RunState.from_xcom(run)
    config, plan = state.config, state.plan
    price = spot_price(ec2_client(config), config.instance_type, config.price_per_hour_usd)
    pages = estimate_pages(plan.bytes, plan.entries, config.bytes_per_page)
    est = estimate(pages, config.seconds_per_page, config.pages_in_parallel, price, pdfs=plan.entries, outputs=config.outputs)
    log.info("estimate for %d PDF(s): %s; budget $%.2f", plan.entries, est.describe(), config.budget_usd)
    if est.cost_usd > config.budget_usd:
        halt(state, RunStatus.HALTED_BUDGET, f"estimated cost ${est.cost_usd:.2f} is over the budget of "
                                             f"${config.budget_usd:.2f} ({est.describe()}); nothing was submitted")
    if config.dry_run:
        raise AirflowSkipException(f"dry run: would submit {plan.entries} PDF(s) in {plan.array_size} children")
    if plan.entries == 0:
        raise AirflowSkipException("nothing to convert: every PDF is already converted")
    return round_order(state, 0, plan.manifest_uri, plan.array_size, price.per_hour, config.budget_usd, price.source).to_xcom()


@task(task_id=TaskId.CHECK_SPEND, multiple_outputs=True)
def check_spend(run: RunArg, rnd: int) -> dict[str, Any]:
    """Between rounds: stop when there is nothing to rerun, or when the spend so far ate the budget."""
    state = RunState.from_xcom(run)
    config = state.config
    previous = _summary(s3_client(config), state.layout, rnd - 1)
    if previous is None or rnd > config.max_rerun_rounds or not previous.rerun_entries:
        raise AirflowSkipException(f"no round {rnd}: nothing to rerun or no rounds left")
    context = get_current_context()
    price = Price(_round_price(context, config), "")
    spent = spend(sum(u.instance_seconds for u in _usages(context, rnd)), price)
    if spent >= config.budget_usd:
        stopped = batch_api.terminate(batch_client(config), _active_jobs(context, rnd), "pdf2md: run over budget")
        halt(state, RunStatus.HALTED_BUDGET, f"budget exceeded between rounds: spent ${spent:.4f} of "
                                             f"${config.budget_usd:.2f} before round {rnd}; terminated {len(stopped)} job(s); "
                                             f"{previous.rerun_entries} retryable PDF(s) not rerun")
    log.info("round %d: rerunning %d PDF(s); spent $%.4f of $%.2f", rnd, previous.rerun_entries, spent, config.budget_usd)
    return round_order(state, rnd, previous.rerun_manifest_uri, previous.rerun_array_size, price.per_hour,
                       config.budget_usd - spent).to_xcom()


@task(task_id=TaskId.REDUCE, trigger_rule="all_done")
def reduce_task(run: RunArg, rnd: int) -> dict[str, Any]:
    """Read the round's failure records; write the next round's manifest of retryable ones."""
    if run is None:
        raise AirflowSkipException("planning failed")
    # Pulled, not passed as an argument: resolving a skipped submit's output as an argument logs an error.
    if get_current_context()["ti"].xcom_pull(task_ids=round_task_id(rnd, TaskId.SUBMIT)) is None:
        raise AirflowSkipException(f"round {rnd} did not run")
    state = RunState.from_xcom(run)
    config = state.config
    summary = reduce_round(s3_client(config), state.layout, rnd, config.output_uri, config.array_size,
                           rerun=rnd < config.max_rerun_rounds, run_id=config.run_id)
    return summary.to_dict()


@task(task_id=TaskId.REPORT, trigger_rule="all_done")
def report_task(run: RunArg) -> dict[str, Any]:
    """One JSON report in S3 and a readable summary in the log; the run fails if work is left undone."""
    if run is None:
        raise AirflowFailException("planning failed: see the plan task's log")
    state = RunState.from_xcom(run)
    context = get_current_context()
    s3 = s3_client(state.config)
    layout = state.layout
    halted = s3io.get_json(s3, layout.run.bucket, layout.report_key, RunReport)
    summaries = [s for r in range(MAX_RERUN_ROUNDS + 1) if (s := _summary(s3, layout, r)) is not None]
    usages = _usages(context, MAX_RERUN_ROUNDS + 1)
    built = build_report(state, summaries, sum(u.instance_seconds for u in usages), _round_price(context, state.config),
                         failures_of_run(s3, layout, len(summaries)))
    final = settle(built, halted, over_budget=any(u.over_budget for u in usages))
    s3io.put_json(s3, layout.run.bucket, layout.report_key, final)
    log.info("%s\nreport: %s", format_report(final), layout.uri(layout.report_key))
    if final.status in STOPPED:
        raise AirflowFailException(final.message)
    return final.to_dict()


def _summary(s3: S3Client, layout: RunLayout, rnd: int) -> RoundSummary | None:
    return s3io.get_json(s3, layout.run.bucket, layout.summary_key(rnd), RoundSummary)


def _usages(context: Context, rounds: int) -> list[JobSpend]:
    """What each round's wait measured last (it pushes its JobSpend even when it fails)."""
    pulled = (context["ti"].xcom_pull(task_ids=round_task_id(r, TaskId.WAIT), key=USAGE_KEY) for r in range(rounds))
    return [JobSpend.from_dict(u) for u in pulled if u]


def _round_price(context: Context, config: RunConfig) -> float:
    """The price check_budget found (Spot or the fallback), else the configured fallback."""
    price = context["ti"].xcom_pull(task_ids=TaskId.CHECK_BUDGET, key=OrderKey.PRICE_PER_HOUR)
    return float(price) if price else float(config.price_per_hour_usd)


def _active_jobs(context: Context, rnd: int) -> list[str]:
    pulled = (context["ti"].xcom_pull(task_ids=round_task_id(r, TaskId.SUBMIT)) for r in range(rnd))
    return [str(job) for job in pulled if job]


SUBMIT_KEYS = (OrderKey.JOB_NAME, OrderKey.ARRAY_PROPERTIES, OrderKey.CONTAINER_OVERRIDES)
"""The order's keys that are the submit operator's arguments of the same names."""


class SubmitArrayJob(BatchOperator):
    """The provider's BatchOperator with only the link it fills when it submits and returns (the wait
    task watches the job): its job-definition, job-queue and CloudWatch links are looked up at the
    task's end from XComs that only a waiting operator writes, and each missing one logs an error."""

    # The provider annotates its attribute as its own four links; one of them is a narrower choice, not another type.
    operator_extra_links = (BatchJobDetailsLink(),)  # type: ignore[assignment]


def _key(order: XComArg, key: str) -> XComArg:
    """One XCom of a multiple-outputs task (only a plain task output has them)."""
    if not isinstance(order, PlainXComArg):
        raise TypeError(f"a round's order is one task's output, got {type(order).__name__}")
    return order[key]


def convert_rounds(run: XComArg, first: XComArg) -> XComArg:
    """Round 0 from `first` (check_budget's output), then the rerun rounds; returns the report task."""
    previous_reduce: XComArg | None = None
    for rnd in range(MAX_RERUN_ROUNDS + 1):
        with TaskGroup(group_id=round_group(rnd), tooltip=f"round {rnd}: {'first pass' if rnd == 0 else 'rerun'}"):
            order = first if rnd == 0 else check_spend(run, rnd)
            # The provider annotates these with their rendered types; a task output is resolved before execute.
            from_order: dict[str, Any] = {key: _key(order, key) for key in SUBMIT_KEYS}
            submit = SubmitArrayJob(
                task_id=TaskId.SUBMIT,
                **from_order,
                job_definition="{{ params.job_definition }}",
                job_queue="{{ params.job_queue }}",
                wait_for_completion=False,
                awslogs_enabled=False,
                aws_conn_id="{{ params.aws_conn_id }}",
            )
            wait = BatchBudgetSensor(
                task_id=TaskId.WAIT,
                job_id=submit.output,
                price_per_hour=_key(order, OrderKey.PRICE_PER_HOUR),
                budget_left_usd=_key(order, OrderKey.BUDGET_LEFT_USD),
                poll_interval_s="{{ params.poll_interval_s }}",
                aws_conn_id="{{ params.aws_conn_id }}",
            )
            done = reduce_task(run, rnd)
            submit >> wait >> done
            if previous_reduce is not None:
                previous_reduce >> order
        previous_reduce = done
    final = report_task(run)
    if previous_reduce is not None:
        previous_reduce >> final
    return final
