"""The tasks of a conversion run, shared by the backfill DAG and the S3-event DAG.

plan → check_budget → round 0 (submit → wait within budget → reduce) → round 1..N (check_spend →
submit → wait → reduce) → report. Each task reads what the previous ones wrote to S3 or XCom; the
logic lives in pdf2md's plain modules, these functions only wire it to Airflow.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.links.batch import BatchJobDetailsLink
from airflow.providers.amazon.aws.operators.batch import BatchOperator
from airflow.sdk import TaskGroup, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pdf2md import batch as batch_api
from pdf2md import s3 as s3io
from pdf2md.airflow.budget_sensor import OVER_BUDGET, BatchBudgetSensor
from pdf2md.airflow.params import MAX_RERUN_ROUNDS, RunConfig
from pdf2md.budget import Price, estimate, estimate_pages, spend, spot_price
from pdf2md.contracts import JobSettings, RoundSummary, RunLayout, RunReport, S3Uri, safe_run_id
from pdf2md.events import entries_from_messages
from pdf2md.plan import Plan, drop_collisions, plan_round, record_collisions, write_manifest
from pdf2md.reduce import failures_of_run, reduce_round
from pdf2md.s3 import RETRY_CONFIG

log = logging.getLogger(__name__)


def aws(conn_id: str, service: str) -> Any:
    """A boto3 client from the Airflow connection, with the project's retry configuration."""
    return AwsBaseHook(aws_conn_id=conn_id, client_type=service, config=RETRY_CONFIG).conn


def layout_of(run: dict[str, Any]) -> RunLayout:
    return RunLayout.for_run(run["runs_uri"], run["run_id"])


def job_name(run: dict[str, Any], rnd: int) -> str:
    """Batch job names allow letters, digits, '-' and '_' only, 128 at most."""
    return f"pdf2md-{safe_run_id(run['run_id']).replace('.', '-')}"[:120] + f"-r{rnd}"


def submit_args(run: dict[str, Any], rnd: int, manifest_uri: str, array_size: int) -> dict[str, Any]:
    """What the BatchOperator submits: the array size and the children's environment (the contract)."""
    settings = JobSettings(
        manifest_uri=manifest_uri, output_uri=run["output_uri"], run_uri=str(layout_of(run).run), run_id=run["run_id"],
        array_size=array_size, round=rnd, backend=run["backend"], pdf_timeout_s=run["pdf_timeout_s"],
        pdf_memory_mb=run["pdf_memory_mb"], max_pages=run["max_pages"], passwords_uri=run["passwords_uri"] or None,
    )
    return {
        "job_name": job_name(run, rnd),
        "array_properties": {"size": array_size},
        "container_overrides": {"environment": [{"name": k, "value": v} for k, v in settings.to_env().items()]},
    }


def halt(run: dict[str, Any], status: str, message: str) -> None:
    """Record why the run stops here (the report task completes it with the numbers), then fail."""
    report = RunReport(run_id=run["run_id"], input_uri=run["input_uri"], output_uri=run["output_uri"], status=status,
                       budget_usd=run["budget_usd"], message=message, listed=run.get("listed", 0), planned=run.get("planned", 0))
    layout = layout_of(run)
    s3io.put_json(aws(run["aws_conn_id"], "s3"), layout.run.bucket, layout.report_key, report)
    raise AirflowFailException(message)


def _config(context: Any) -> RunConfig:
    try:
        return RunConfig.from_params(context["run_id"], dict(context["params"]))
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None


@task
def plan() -> dict[str, Any]:
    """Validate the run's settings, list the input, write round 0's manifest."""
    config = _config(get_current_context())
    run = config.to_dict()
    started = time.time()
    result = plan_round(aws(config.aws_conn_id, "s3"), layout_of(run), config.input_uri, config.output_uri,
                        config.array_size, retry_failed=config.retry_failed, run_id=config.run_id)
    return _with_plan(run, result, started)


@task
def collect_events() -> dict[str, Any]:
    """The new PDFs named by the S3 notifications that triggered this run, as round 0's manifest.

    Messages come from the SQS asset watcher, or from the `sqs_messages` Param (replaying a DLQ).
    """
    context = get_current_context()
    config = _config(context)
    run = config.to_dict()
    messages = list(context["params"].get("sqs_messages") or [])
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            messages.extend((event.extra or {}).get("payload", {}).get("message_batch", []))
    started = time.time()
    entries, refused = drop_collisions(entries_from_messages(messages, S3Uri.parse(config.input_uri)))
    log.info("%d message(s) → %d new PDF(s)", len(messages), len(entries))
    s3 = aws(config.aws_conn_id, "s3")
    record_collisions(s3, layout_of(run), refused, config.run_id)
    result = write_manifest(s3, layout_of(run), entries, config.array_size, 0, collisions=len(refused))
    return _with_plan(run, result, started)


def _with_plan(run: dict[str, Any], result: Plan, started: float) -> dict[str, Any]:
    return {**run, "started_at": started, "listed": result.listed, "skipped": result.skipped,
            "known_failures": result.known_failures, "collisions": result.collisions,
            "planned": result.entries, "bytes": result.bytes, "manifest_uri": result.manifest_uri,
            "planned_array_size": result.array_size}


@task(multiple_outputs=True)
def check_budget(run: dict[str, Any]) -> dict[str, Any]:
    """Pre-flight: the estimate must fit the budget before anything is submitted."""
    price = spot_price(aws(run["aws_conn_id"], "ec2"), run["instance_type"], run["price_per_hour_usd"])
    pages = estimate_pages(run["bytes"], run["planned"], run["bytes_per_page"])
    est = estimate(pages, run["seconds_per_page"], run["pages_in_parallel"], price)
    log.info("estimate for %d PDF(s): %s; budget $%.2f", run["planned"], est.describe(), run["budget_usd"])
    if est.cost_usd > run["budget_usd"]:
        halt(run, "halted-budget", f"estimated cost ${est.cost_usd:.2f} is over the budget of ${run['budget_usd']:.2f} "
                                   f"({est.describe()}); nothing was submitted")
    if run["dry_run"]:
        raise AirflowSkipException(f"dry run: would submit {run['planned']} PDF(s) in {run['planned_array_size']} children")
    if run["planned"] == 0:
        raise AirflowSkipException("nothing to convert: every PDF is already converted")
    return {**submit_args(run, 0, run["manifest_uri"], run["planned_array_size"]), "price_per_hour": price.per_hour,
            "price_source": price.source, "budget_left_usd": run["budget_usd"]}


@task(multiple_outputs=True)
def check_spend(run: dict[str, Any], rnd: int) -> dict[str, Any]:
    """Between rounds: stop when there is nothing to rerun, or when the spend so far ate the budget."""
    previous = _summary(aws(run["aws_conn_id"], "s3"), layout_of(run), rnd - 1)
    if previous is None or rnd > run["max_rerun_rounds"] or not previous.rerun_entries:
        raise AirflowSkipException(f"no round {rnd}: nothing to rerun or no rounds left")
    context = get_current_context()
    price = Price(_round_price(context, run), "")
    spent = spend(_instance_seconds(context, rnd), price)
    if spent >= run["budget_usd"]:
        active = _active_jobs(context, run, rnd)
        stopped = batch_api.terminate(aws(run["aws_conn_id"], "batch"), active, "pdf2md: run over budget")
        halt(run, "halted-budget", f"budget exceeded between rounds: spent ${spent:.4f} of ${run['budget_usd']:.2f} "
                                   f"before round {rnd}; terminated {len(stopped)} job(s); "
                                   f"{previous.rerun_entries} retryable PDF(s) not rerun")
    log.info("round %d: rerunning %d PDF(s); spent $%.4f of $%.2f", rnd, previous.rerun_entries, spent, run["budget_usd"])
    return {**submit_args(run, rnd, previous.rerun_manifest_uri, previous.rerun_array_size),
            "price_per_hour": price.per_hour, "budget_left_usd": run["budget_usd"] - spent}


@task(trigger_rule="all_done")
def reduce(run: dict[str, Any] | None, rnd: int) -> dict[str, Any]:
    """Read the round's failure records; write the next round's manifest of retryable ones."""
    if run is None:
        raise AirflowSkipException("planning failed")
    context = get_current_context()
    if context["ti"].xcom_pull(task_ids=f"round_{rnd}.submit") is None:
        raise AirflowSkipException(f"round {rnd} did not run")
    layout = layout_of(run)
    summary = reduce_round(aws(run["aws_conn_id"], "s3"), layout, rnd, run["output_uri"], run["array_size"],
                           rerun=rnd < run["max_rerun_rounds"])
    return summary.to_dict()


@task(trigger_rule="all_done")
def report(run: dict[str, Any] | None) -> dict[str, Any]:
    """One JSON report in S3 and a readable summary in the log; the run fails if work is left undone."""
    if run is None:
        raise AirflowFailException("planning failed: see the plan task's log")
    context = get_current_context()
    s3 = aws(run["aws_conn_id"], "s3")
    layout = layout_of(run)
    halted = s3io.get_json(s3, layout.run.bucket, layout.report_key, RunReport)
    summaries = [s for r in range(MAX_RERUN_ROUNDS + 1) if (s := _summary(s3, layout, r)) is not None]
    usages = _usages(context, MAX_RERUN_ROUNDS + 1)
    rpt = build_report(run, summaries, sum(u["instance_seconds"] for u in usages), _round_price(context, run),
                       failures_of_run(s3, layout, len(summaries)))
    if halted is not None and halted.status.startswith("halted"):
        rpt.status, rpt.message = halted.status, halted.message
    elif any(u["status"] == OVER_BUDGET for u in usages):
        rpt.status = "halted-budget"
        rpt.message = f"budget exceeded: ${rpt.estimated_cost_usd:.4f} spent of ${rpt.budget_usd:.2f}; jobs were terminated"
    s3io.put_json(s3, layout.run.bucket, layout.report_key, rpt)
    log.info("%s\nreport: %s", format_report(rpt), layout.uri(layout.report_key))
    if rpt.status in ("failed", "halted-budget"):
        raise AirflowFailException(rpt.message)
    return rpt.to_dict()


def build_report(run: dict[str, Any], summaries: list[RoundSummary], instance_seconds: float, price_per_hour: float,
                 failures: list[Any]) -> RunReport:
    """The run's numbers from its rounds; `failed` only when retryable work is left undone."""
    by_class: dict[str, int] = {}
    for s in summaries:
        for cls, n in s.permanent_by_class.items():
            by_class[cls] = by_class.get(cls, 0) + n
    if run.get("collisions"):
        by_class["key-collision"] = run["collisions"]
    left = summaries[-1].retryable_by_class if summaries else {}
    for cls, n in left.items():
        by_class[cls] = by_class.get(cls, 0) + n
    pages = sum(s.pages for s in summaries)
    wall = max(time.time() - run["started_at"], 1e-9)
    if run["dry_run"]:
        status, message = "dry-run", f"dry run: {run['planned']} PDF(s) planned, nothing submitted"
    elif left:
        status, message = "failed", f"{sum(left.values())} PDF(s) still failing with retryable errors after {len(summaries)} round(s)"
    else:
        status, message = "succeeded", "every PDF is converted or recorded as a permanent failure"
    hours = instance_seconds / 3600
    return RunReport(
        run_id=run["run_id"], input_uri=run["input_uri"], output_uri=run["output_uri"], status=status,
        listed=run["listed"], planned=run["planned"], converted=sum(s.converted for s in summaries),
        skipped=run["skipped"] + sum(s.skipped for s in summaries), known_failures=run["known_failures"],
        failed=sum(by_class.values()),
        failed_by_class=by_class, failures=[f.to_dict() for f in failures], pages=pages, rounds=len(summaries),
        gpu_hours=round(hours, 6), price_per_hour_usd=price_per_hour, estimated_cost_usd=round(hours * price_per_hour, 6),
        budget_usd=run["budget_usd"], wall_seconds=round(wall, 3), pages_per_hour=round(pages / wall * 3600, 1),
        message=message,
    )


def format_report(r: RunReport) -> str:
    classes = ", ".join(f"{k}: {v}" for k, v in sorted(r.failed_by_class.items())) or "none"
    return "\n".join([
        f"pdf2md run {r.run_id}: {r.status.upper()} - {r.message}",
        f"  PDFs     listed {r.listed}, planned {r.planned}, converted {r.converted}, skipped {r.skipped} "
        f"(+{r.known_failures} known failures), failed {r.failed}",
        f"  failed   {classes}",
        f"  pages    {r.pages} in {r.rounds} round(s), {r.pages_per_hour:.0f} pages/hour",
        f"  cost     {r.gpu_hours:.4f} instance-hours × ${r.price_per_hour_usd:.4f}/h = ${r.estimated_cost_usd:.4f} "
        f"(budget ${r.budget_usd:.2f})",
        f"  output   {r.output_uri}",
    ])


def _summary(s3: Any, layout: RunLayout, rnd: int) -> RoundSummary | None:
    return s3io.get_json(s3, layout.run.bucket, layout.summary_key(rnd), RoundSummary)


def _usages(context: Any, rounds: int) -> list[dict[str, Any]]:
    """What each round's wait measured last: status, instance seconds, cost."""
    return [u for r in range(rounds) if (u := context["ti"].xcom_pull(task_ids=f"round_{r}.wait", key="usage"))]


def _instance_seconds(context: Any, rounds: int) -> float:
    return sum(float(u["instance_seconds"]) for u in _usages(context, rounds))


def _round_price(context: Any, run: dict[str, Any]) -> float:
    price = context["ti"].xcom_pull(task_ids="check_budget", key="price_per_hour")
    return float(price) if price else float(run["price_per_hour_usd"])


def _active_jobs(context: Any, run: dict[str, Any], rnd: int) -> list[str]:
    return [j for r in range(rnd) if (j := context["ti"].xcom_pull(task_ids=f"round_{r}.submit"))]


class SubmitArrayJob(BatchOperator):
    """The provider's BatchOperator with only the link it fills when it submits and returns (the wait
    task watches the job): its job-definition, job-queue and CloudWatch links are looked up at the
    task's end from XComs that only a waiting operator writes, and each missing one logs an error."""

    operator_extra_links = (BatchJobDetailsLink(),)


def convert_rounds(run: Any, first: Any) -> Any:
    """Round 0 from `first` (check_budget's output), then the rerun rounds; returns the report task."""
    previous_reduce = None
    for rnd in range(MAX_RERUN_ROUNDS + 1):
        with TaskGroup(group_id=f"round_{rnd}", tooltip=f"round {rnd}: {'first pass' if rnd == 0 else 'rerun'}"):
            args = first if rnd == 0 else check_spend(run, rnd)
            submit = SubmitArrayJob(
                task_id="submit",
                job_name=args["job_name"],
                job_definition="{{ params.job_definition }}",
                job_queue="{{ params.job_queue }}",
                array_properties=args["array_properties"],
                container_overrides=args["container_overrides"],
                wait_for_completion=False,
                awslogs_enabled=False,
                aws_conn_id="{{ params.aws_conn_id }}",
            )
            wait = BatchBudgetSensor(
                task_id="wait",
                job_id=submit.output,
                price_per_hour=args["price_per_hour"],
                budget_left_usd=args["budget_left_usd"],
                poll_interval_s="{{ params.poll_interval_s }}",
                aws_conn_id="{{ params.aws_conn_id }}",
            )
            done = reduce(run, rnd)
            submit >> wait >> done
            if previous_reduce is not None:
                previous_reduce >> args
        previous_reduce = done
    final = report(run)
    previous_reduce >> final
    return final
