"""Names built from what users choose: run ids, keys. Distinct inputs stay distinct, and fit their limits."""

from __future__ import annotations

import re

from pdf2md.contracts import RunLayout, safe_run_id
from pdf2md.run_state import batch_job_name_prefix, job_name

PUNCTUATED = ("nightly:1", "nightly+1", "nightly 1", "nightly-1", "nightly.1", "nightly/1", "nightly--1")


def test_run_ids_differing_only_in_punctuation_get_their_own_folder_and_jobs() -> None:
    folders = {RunLayout.for_run("s3://b/runs/", run_id).run.dir_prefix for run_id in PUNCTUATED}
    assert len(folders) == len(PUNCTUATED), folders
    assert len({batch_job_name_prefix(run_id) for run_id in PUNCTUATED}) == len(PUNCTUATED)
    for run_id in PUNCTUATED:
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", safe_run_id(run_id))
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", job_name(run_id, 3))
        assert safe_run_id(safe_run_id(run_id)) == safe_run_id(run_id)


def test_a_safe_run_id_keeps_its_name_and_long_ids_stay_apart() -> None:
    assert safe_run_id("nightly-1") == "nightly-1" and safe_run_id("scheduled__2026.1") == "scheduled__2026.1"
    assert safe_run_id("manual__2026-11-23T10:00:00+00:00").startswith("manual__2026-11-23T10-00-00-00-00-")
    long_a, long_b = "x" * 200 + "a", "x" * 200 + "b"
    assert safe_run_id(long_a) != safe_run_id(long_b) and len(safe_run_id(long_a)) <= 128
    assert batch_job_name_prefix(long_a) != batch_job_name_prefix(long_b)
    assert len(job_name(long_a, 3)) <= 128
    assert safe_run_id("::") != safe_run_id("??") and safe_run_id("::").startswith("run-")
