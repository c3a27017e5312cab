"""The task ids and XCom keys of a pdf2md DAG, named once.

The DAG is built from these names (pdf2md.airflow.tasks) and read back by them (the tasks' XCom
pulls, the status page's look-up of a run's state): a rename here moves both. Importing this module
needs no Airflow.
"""

from __future__ import annotations

from typing import Final

RETURN_VALUE = "return_value"
"""Airflow's key for what a task returns."""
USAGE_KEY = "usage"
"""The wait sensor's record of its round's spend (a JobSpend), pushed even when the wait fails."""


class TaskId:
    """Every task of a pdf2md DAG; the round tasks live in one TaskGroup per round (`round_task_id`).

    Plain strings, not an enum: Airflow keeps and compares task ids as `str`."""

    PLAN: Final = "plan"
    COLLECT_EVENTS: Final = "collect_events"
    CHECK_BUDGET: Final = "check_budget"
    CHECK_SPEND: Final = "check_spend"
    SUBMIT: Final = "submit"
    WAIT: Final = "wait"
    REDUCE: Final = "reduce"
    REPORT: Final = "report"


FIRST_TASKS = (TaskId.PLAN, TaskId.COLLECT_EVENTS)
"""The first task of each pdf2md DAG: it returns the run's RunState."""


def round_group(rnd: int) -> str:
    """The TaskGroup holding round `rnd`'s tasks."""
    return f"round_{rnd}"


def round_task_id(rnd: int, step: str) -> str:
    """A round task's full id: Airflow prefixes a grouped task's id with its group's id and a dot."""
    return f"{round_group(rnd)}.{step}"
