"""The shared contracts: sharding, the job environment, keys, records."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdf2md.contracts import (
    ENV_ARRAY_INDEX,
    JOB_ENV_NAMES,
    FailureRecord,
    JobSettings,
    ManifestEntry,
    OutputMeta,
    RunLayout,
    S3Uri,
    dump_jsonl,
    effective_array_size,
    failure_marker_key,
    load_jsonl,
    markdown_rel,
    output_key,
    relative_key,
    safe_run_id,
    shard_of,
)


@given(n=st.integers(min_value=0, max_value=3000), size=st.integers(min_value=1, max_value=10_000))
def test_every_entry_lands_in_exactly_one_shard(n: int, size: int) -> None:
    shards: dict[int, list[int]] = {}
    for index in range(n):
        shards.setdefault(shard_of(index, size), []).append(index)
    assert sorted(i for members in shards.values() for i in members) == list(range(n))
    assert all(0 <= s < size for s in shards)
    sizes = [len(m) for m in shards.values()]
    assert not sizes or max(sizes) - min(sizes) <= 1


@given(n=st.integers(min_value=0, max_value=50_000), requested=st.integers(min_value=2, max_value=10_000))
def test_effective_array_size_stays_within_aws_limits(n: int, requested: int) -> None:
    size = effective_array_size(n, requested)
    assert 2 <= size <= 10_000 and size <= max(requested, 2)
    assert size <= max(n, 2)


def _settings() -> JobSettings:
    return JobSettings(manifest_uri="s3://b/m.jsonl", output_uri="s3://o/md/", run_uri="s3://o/runs/r1/", run_id="r1",
                       array_size=4, round=1, backend="text", passwords_uri="s3://o/pw.json")


def test_job_settings_round_trip_through_the_environment() -> None:
    env = _settings().to_env()
    assert set(env) <= set(JOB_ENV_NAMES)
    back = JobSettings.from_env({**env, ENV_ARRAY_INDEX: "3", "AWS_BATCH_JOB_ATTEMPT": "2"})
    assert back == JobSettings(**{**_settings().__dict__, "array_index": 3, "attempt": 2})
    assert JobSettings.from_env(env).array_index == 0, "AWS_BATCH_JOB_ARRAY_INDEX is 0 when absent"


@pytest.mark.parametrize(("change", "message"), [
    ({"PDF2MD_MANIFEST_URI": ""}, "missing environment variable"),
    ({"PDF2MD_ARRAY_SIZE": "four"}, "must be an integer"),
    ({ENV_ARRAY_INDEX: "4"}, "outside 0..3"),
    ({"PDF2MD_BACKEND": "magic"}, "is not one of"),
])
def test_bad_job_environment_names_the_problem(change: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JobSettings.from_env({**_settings().to_env(), **change})


def test_output_layout_mirrors_the_input_prefix() -> None:
    out = S3Uri.parse("s3://out/markdown")
    assert relative_key("in/2024/a b/é.PDF", "in/") == "2024/a b/é.PDF"
    assert relative_key("in/x.pdf", "in/x.pdf") == "x.pdf"
    assert markdown_rel("2024/a b/é.PDF") == "2024/a b/é.md"
    assert output_key(out, "2024/report.pdf") == "markdown/2024/report.md"
    assert failure_marker_key(out, "2024/report.pdf") == "markdown/_pdf2md/failed/2024/report.json"
    assert output_key(out, "../../etc/passwd.pdf") == "markdown/etc/passwd.md"


def test_run_layout_keys_and_run_ids_are_safe() -> None:
    layout = RunLayout.for_run("s3://o/pdf2md-runs/", "manual__2026-11-23T10:00:00+00:00")
    assert layout.run.dir_prefix == "pdf2md-runs/manual__2026-11-23T10-00-00-00-00-4fd567e8/"
    assert layout.manifest_key(1).endswith("/round-001/manifest.jsonl")
    assert layout.failures_key(0, 7, 2).endswith("/round-000/failures/shard-00007.attempt-2.jsonl")
    assert safe_run_id("::") == "run-71546855"


def test_records_round_trip_and_bad_lines_are_named() -> None:
    entries = [ManifestEntry("b", f"k{i}.pdf", f"k{i}.pdf", i, f"e{i}", 1.5) for i in range(3)]
    assert list(load_jsonl(ManifestEntry, list(dump_jsonl(entries)))) == entries
    with pytest.raises(ValueError, match="line 2 is not a valid ManifestEntry"):
        list(load_jsonl(ManifestEntry, [entries[0].to_json(), "{not json"]))
    failure = FailureRecord("k.pdf", "k.pdf", "b", "e", 1, "interrupted", "cut", True, 1, 0, 0, "r", 2.0)
    assert failure.to_manifest_entry() == ManifestEntry("b", "k.pdf", "k.pdf", 1, "e", 2.0, attempt=2)


def test_output_metadata_fits_s3_user_metadata() -> None:
    meta = OutputMeta("s3://in/été plan.pdf", "abc", "s3://o/x.md", "pdf2md/0.1.0", "text", 3, 0.25, "r1")
    headers = meta.to_s3_metadata()
    assert all(v.isascii() for v in headers.values())
    back = OutputMeta.from_s3_metadata(headers, "s3://o/x.md")
    assert (back.source_uri, back.source_etag, back.pages, back.seconds) == (meta.source_uri, "abc", 3, 0.25)
    assert "gpu-peak-mb" not in headers and back.gpu_peak_mb is None  # no page ran on a GPU


def test_gpu_peak_rides_on_the_output_when_a_gpu_ran() -> None:
    meta = OutputMeta("s3://in/a.pdf", "e", "s3://o/a.md", "pdf2md/0.1.0", "dolphin", 2, 3.5, "r1", gpu_peak_mb=2048.5)
    headers = meta.to_s3_metadata()
    assert headers["gpu-peak-mb"] == "2048.5"
    assert OutputMeta.from_s3_metadata(headers, "s3://o/a.md").gpu_peak_mb == 2048.5
