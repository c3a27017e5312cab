"""The trigger conf's numbers: what the Param schemas refuse at trigger time, and RunConfig before the plan."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from pdf2md.run_state import RunConfig
from tests.test_run_state import PARAMS

FLOATS = ("budget_usd", "seconds_per_page", "price_per_hour_usd")
INTEGERS = ("array_size", "max_rerun_rounds", "pages_in_parallel", "bytes_per_page", "pdf_timeout_s", "pdf_memory_mb",
            "max_pages", "poll_interval_s")
NON_FINITE = (math.nan, math.inf, -math.inf)


def _validate(conf: dict[str, Any]) -> dict[str, Any]:
    """The conf as Airflow validates a trigger (CLI, REST, form): the DAG's Params updated with it."""
    from airflow.sdk.definitions.param import ParamsDict

    from pdf2md.airflow.params import run_params

    params = ParamsDict(copy.deepcopy(run_params()))
    params.update(conf)
    return dict(params.validate())


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("value", NON_FINITE, ids=str)
def test_a_non_finite_number_is_refused_by_the_schema_and_by_run_config(name: str, value: float) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match=name):
        _validate({name: value})
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        RunConfig.from_params("r", {**PARAMS, name: value})


@pytest.mark.parametrize("name", INTEGERS)
def test_a_float_where_a_whole_number_goes_is_refused_before_the_plan(name: str) -> None:
    """JSON Schema counts 3.0 as an integer, so the form lets it through; RunConfig refuses it (a child
    would read PDF2MD_PDF_TIMEOUT_S=600.0 and exit, Batch refuses an array size of 3.0)."""
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match=name):
        _validate({name: PARAMS[name] + 0.5})
    for bad in (float(PARAMS[name]), PARAMS[name] + 0.5, math.nan, True, str(PARAMS[name])):
        with pytest.raises(ValueError, match=f"{name} must be a whole number"):
            RunConfig.from_params("r", {**PARAMS, name: bad})


def test_good_numbers_still_pass_and_floats_take_whole_numbers() -> None:
    params = _validate({"budget_usd": 12, "seconds_per_page": 0.25, "price_per_hour_usd": 0.2, "array_size": 3})
    given = ("budget_usd", "seconds_per_page", "price_per_hour_usd", "array_size")
    config = RunConfig.from_params("r", {**PARAMS, **{name: params[name] for name in given}})
    assert (config.budget_usd, config.seconds_per_page, config.array_size) == (12.0, 0.25, 3)
    assert isinstance(config.budget_usd, float) and type(config.array_size) is int
