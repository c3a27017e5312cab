"""A run's report: its numbers from the rounds' summaries and spend, how it ended, and a readable form.

The report task gathers the inputs (summaries and failures from S3, the waits' measured spend from
Airflow) and writes what `build_report` and `settle` return; `format_report` is what its log, the
demo and a terminal show.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pdf2md.contracts import ErrorKind, FailureRecord, RoundSummary, RunReport, RunStatus
from pdf2md.run_state import RunState

STOPPED = (RunStatus.FAILED, RunStatus.HALTED_BUDGET)
"""Statuses that fail the run: work left undone, or the budget stopped it."""


def halted_report(state: RunState, status: RunStatus, message: str) -> RunReport:
    """Why a run stops before its end; the report task later completes it with the numbers."""
    config = state.config
    return RunReport(run_id=config.run_id, input_uri=config.input_uri, output_uri=config.output_uri, status=status,
                     budget_usd=config.budget_usd, message=message, listed=state.plan.listed, planned=state.plan.entries,
                     outputs=list(config.outputs))


def build_report(state: RunState, summaries: Sequence[RoundSummary], instance_seconds: float, price_per_hour: float,
                 failures: Sequence[FailureRecord], now: float | None = None) -> RunReport:
    """The run's numbers from its rounds; `failed` only when retryable work is left undone."""
    config, plan = state.config, state.plan
    by_class: dict[str, int] = {}
    for s in summaries:
        for cls, n in s.permanent_by_class.items():
            by_class[cls] = by_class.get(cls, 0) + n
    if plan.collisions:
        by_class[ErrorKind.KEY_COLLISION.value] = plan.collisions
    left = summaries[-1].retryable_by_class if summaries else {}
    for cls, n in left.items():
        by_class[cls] = by_class.get(cls, 0) + n
    pages = sum(s.pages for s in summaries)
    wall = max((time.time() if now is None else now) - state.started_at, 1e-9)
    if config.dry_run:
        status, message = RunStatus.DRY_RUN, f"dry run: {plan.entries} PDF(s) planned, nothing submitted"
    elif left:
        status = RunStatus.FAILED
        message = f"{sum(left.values())} PDF(s) still failing with retryable errors after {len(summaries)} round(s)"
    elif misconfigured := by_class.get(ErrorKind.CONFIG_FAULT.value, 0):
        status = RunStatus.FAILED
        message = (f"{misconfigured} PDF(s) not converted: their children could not start with the run's configuration "
                   f"({ErrorKind.CONFIG_FAULT}: see the failures); fix it and run again")
    else:
        status, message = RunStatus.SUCCEEDED, "every PDF is converted or recorded as a permanent failure"
    hours = instance_seconds / 3600
    return RunReport(
        run_id=config.run_id, input_uri=config.input_uri, output_uri=config.output_uri, status=status,
        listed=plan.listed, planned=plan.entries, converted=sum(s.converted for s in summaries),
        skipped=plan.skipped + sum(s.skipped for s in summaries), known_failures=plan.known_failures,
        failed=sum(by_class.values()),
        failed_by_class=by_class, failures=[f.to_dict() for f in failures], pages=pages, rounds=len(summaries),
        gpu_hours=round(hours, 6), price_per_hour_usd=price_per_hour, estimated_cost_usd=round(hours * price_per_hour, 6),
        budget_usd=config.budget_usd, wall_seconds=round(wall, 3), pages_per_hour=round(pages / wall * 3600, 1),
        message=message, outputs=list(config.outputs), figures=sum(s.figures for s in summaries),
    )


def settle(report: RunReport, halted: RunReport | None, over_budget: bool) -> RunReport:
    """How the run ended: a halt recorded by an earlier task wins, then a wait stopped over budget."""
    if halted is not None and halted.status == RunStatus.HALTED_BUDGET:
        report.status, report.message = halted.status, halted.message
    elif over_budget:
        report.status = RunStatus.HALTED_BUDGET
        report.message = (f"budget exceeded: ${report.estimated_cost_usd:.4f} spent of ${report.budget_usd:.2f}; "
                          "jobs were terminated")
    return report


def format_report(r: RunReport) -> str:
    """The report in six lines, for a log or a terminal."""
    classes = ", ".join(f"{k}: {v}" for k, v in sorted(r.failed_by_class.items())) or "none"
    return "\n".join([
        f"pdf2md run {r.run_id}: {r.status.upper()} - {r.message}",
        f"  PDFs     listed {r.listed}, planned {r.planned}, converted {r.converted}, skipped {r.skipped} "
        f"(+{r.known_failures} known failures), failed {r.failed}",
        f"  failed   {classes}",
        f"  pages    {r.pages} in {r.rounds} round(s), {r.pages_per_hour:.0f} pages/hour",
        f"  cost     {r.gpu_hours:.4f} instance-hours × ${r.price_per_hour_usd:.4f}/h = ${r.estimated_cost_usd:.4f} "
        f"(budget ${r.budget_usd:.2f})",
        f"  output   {r.output_uri} ({', '.join(r.outputs)}{f'; {r.figures} figure(s)' if 'figures' in r.outputs else ''})",
    ])
