"""A PDF that changes under a run: deleted between listing and conversion, or replaced while it converts.

The worker runs in this process against the emulator; the changes are made from the test's own client,
at the moment a botocore hook on the worker's client says the worker reached a given request.
"""

from __future__ import annotations

from typing import Any

from pdf2md import s3 as s3io
from pdf2md import worker
from pdf2md.contracts import FailureRecord, JobSettings, OutputMeta, RunLayout, S3Uri, failure_marker_key, is_retryable
from pdf2md.plan import plan_round, write_manifest
from pdf2md.reduce import reduce_round
from tests.conftest import SAMPLES

IN, OUT = "in/", "out/"


def _plan(s3: Any, bucket: str, run_id: str) -> Any:
    layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
    return plan_round(s3, layout, f"s3://{bucket}/{IN}", f"s3://{bucket}/{OUT}", requested_array_size=2, run_id=run_id)


def _settings(bucket: str, manifest_uri: str, run_id: str, attempt: int = 1, rnd: int = 0) -> JobSettings:
    return JobSettings(manifest_uri=manifest_uri, output_uri=f"s3://{bucket}/{OUT}", run_uri=f"s3://{bucket}/runs/{run_id}/",
                       run_id=run_id, array_size=1, attempt=attempt, round=rnd, backend="text", pdf_timeout_s=60)


def _records(s3: Any, bucket: str, run_id: str, attempt: int = 1, rnd: int = 0) -> tuple[list[OutputMeta], list[FailureRecord]]:
    layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
    return (list(s3io.read_jsonl(s3, bucket, layout.results_key(rnd, 0, attempt), OutputMeta)),
            list(s3io.read_jsonl(s3, bucket, layout.failures_key(rnd, 0, attempt), FailureRecord)))


def _put(s3: Any, bucket: str, key: str, sample: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=(SAMPLES / sample).read_bytes())


def test_a_pdf_deleted_after_listing_is_gone_for_good_not_retried(s3: Any, bucket: str) -> None:
    _put(s3, bucket, "in/kept.pdf", "crazyones.pdf")
    _put(s3, bucket, "in/deleted.pdf", "crazyones.pdf")
    plan = _plan(s3, bucket, "r1")
    s3.delete_object(Bucket=bucket, Key="in/deleted.pdf")
    assert worker.run(_settings(bucket, plan.manifest_uri, "r1"), s3=s3io.client()) == worker.EXIT_DONE

    converted, failed = _records(s3, bucket, "r1")
    assert [m.source_uri for m in converted] == [f"s3://{bucket}/in/kept.pdf"]
    assert [(f.key, f.error_class, f.retryable) for f in failed] == [("in/deleted.pdf", "gone", False)]
    assert not is_retryable("gone")
    # Permanent: a marker beside the outputs, so a later plan skips it (unless a newer PDF comes back).
    marker = failure_marker_key(S3Uri(bucket, OUT), "deleted.pdf")
    assert s3io.head(s3, bucket, marker) is not None


def _md(s3: Any, bucket: str, rel_md: str) -> tuple[str, dict[str, str]]:
    got = s3.get_object(Bucket=bucket, Key=OUT + rel_md)
    return got["Body"].read().decode(), got["Metadata"]


def _etag(s3: Any, bucket: str, key: str) -> str:
    return str(s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')


def test_a_pdf_replaced_after_listing_converts_the_new_version_and_records_its_etag(s3: Any, bucket: str) -> None:
    _put(s3, bucket, "in/a.pdf", "crazyones.pdf")
    plan = _plan(s3, bucket, "r1")
    _put(s3, bucket, "in/a.pdf", "code_and_formula.pdf")
    client = s3io.client()
    pinned: list[bool] = []

    def seen(request: Any, **_: Any) -> None:
        if request.url.endswith("/in/a.pdf"):
            pinned.append(bool(request.headers.get("If-Match")))

    client.meta.events.register("before-send.s3.GetObject", seen)
    assert worker.run(_settings(bucket, plan.manifest_uri, "r1"), s3=client) == worker.EXIT_DONE

    body, meta = _md(s3, bucket, "a.md")
    assert "crazy ones" not in body.lower()
    assert meta["source-etag"] == _etag(s3, bucket, "in/a.pdf"), "the output names the version it was made from"
    converted, failed = _records(s3, bucket, "r1")
    assert failed == [] and [m.source_etag for m in converted] == [meta["source-etag"]]
    assert pinned == [True, False], "the GET is pinned to the listed ETag; refused (412), the PDF is read as it is now"


def test_a_pdf_replaced_while_it_converts_is_converted_again_not_left_stale(s3: Any, bucket: str) -> None:
    _put(s3, bucket, "in/a.pdf", "crazyones.pdf")
    plan = _plan(s3, bucket, "r1")
    client = s3io.client()

    def replace_source(request: Any, **_: Any) -> None:
        if request.url.endswith(".md"):  # the conversion of the listed version is done, its Markdown goes out
            _put(s3, bucket, "in/a.pdf", "code_and_formula.pdf")

    client.meta.events.register("before-send.s3.PutObject", replace_source)
    assert worker.run(_settings(bucket, plan.manifest_uri, "r1"), s3=client) == worker.EXIT_DONE

    _converted, failed = _records(s3, bucket, "r1")
    assert [(f.key, f.error_class, f.retryable) for f in failed] == [("in/a.pdf", "source-changed", True)]
    # Nothing stale stays behind that a later plan would take for up to date: the next plan converts it.
    assert _plan(s3, bucket, "r2").entries == 1
    # The rerun of the retryable record converts the new version.
    layout = RunLayout(S3Uri(bucket, "runs/r1/"))
    again = write_manifest(s3, layout, [f.to_manifest_entry() for f in failed], 2, 1)
    assert worker.run(_settings(bucket, again.manifest_uri, "r1", rnd=1), s3=s3io.client()) == worker.EXIT_DONE
    body, meta = _md(s3, bucket, "a.md")
    assert "crazy ones" not in body.lower() and meta["source-etag"] == _etag(s3, bucket, "in/a.pdf")
    assert _plan(s3, bucket, "r3").entries == 0


def _stale_output_of_another_version(s3: Any, bucket: str) -> Any:
    """a.pdf as listed, and an a.md written after it but made from another version (the race above, as an
    earlier worker without the check left it)."""
    _put(s3, bucket, "in/a.pdf", "crazyones.pdf")
    plan = _plan(s3, bucket, "r1")
    s3.put_object(Bucket=bucket, Key=OUT + "a.md", Body=b"old", Metadata={"source-etag": "0123456789abcdef"})
    return plan


def test_a_retried_attempt_reconverts_an_output_made_from_another_version(s3: Any, bucket: str) -> None:
    plan = _stale_output_of_another_version(s3, bucket)
    assert worker.run(_settings(bucket, plan.manifest_uri, "r1", attempt=2), s3=s3io.client()) == worker.EXIT_DONE
    body, meta = _md(s3, bucket, "a.md")
    assert "crazy ones" in body.lower() and meta["source-etag"] == _etag(s3, bucket, "in/a.pdf")


def test_reduce_counts_an_output_of_another_version_as_not_done(s3: Any, bucket: str) -> None:
    plan = _stale_output_of_another_version(s3, bucket)
    layout = RunLayout(S3Uri(bucket, "runs/r1/"))
    summary = reduce_round(s3, layout, 0, f"s3://{bucket}/{OUT}", plan.array_size, rerun=True, run_id="r1")
    assert (summary.skipped, summary.retryable_by_class) == (0, {"interrupted": 1})


# --- same-named PDFs across runs: the first converted keeps its output --------------------------------


def test_a_later_pdf_of_the_same_output_does_not_replace_the_first_ones_markdown(s3: Any, bucket: str) -> None:
    _put(s3, bucket, "in/a.pdf", "crazyones.pdf")
    first = _plan(s3, bucket, "r1")
    assert worker.run(_settings(bucket, first.manifest_uri, "r1"), s3=s3io.client()) == worker.EXIT_DONE
    _put(s3, bucket, "in/a.PDF", "code_and_formula.pdf")  # sorts first, and is newer than a.md

    later = _plan(s3, bucket, "r2")
    assert (later.entries, later.skipped, later.collisions) == (0, 1, 1)
    refused = list(s3io.read_jsonl(s3, bucket, "runs/r2/round-000/failures/planner.jsonl", FailureRecord))
    assert [(f.key, f.error_class) for f in refused] == [("in/a.PDF", "key-collision")]
    assert "crazy ones" in _md(s3, bucket, "a.md")[0].lower()


def test_an_event_run_of_a_new_key_for_an_existing_output_is_a_collision(s3: Any, bucket: str) -> None:
    """S3-event runs list no outputs: the worker finds the owner on the object it would overwrite."""
    from pdf2md.contracts import ManifestEntry

    _put(s3, bucket, "in/a.pdf", "crazyones.pdf")
    first = _plan(s3, bucket, "r1")
    assert worker.run(_settings(bucket, first.manifest_uri, "r1"), s3=s3io.client()) == worker.EXIT_DONE
    _put(s3, bucket, "in/a.PDF", "code_and_formula.pdf")
    head = s3.head_object(Bucket=bucket, Key="in/a.PDF")
    entry = ManifestEntry(bucket, "in/a.PDF", "a.PDF", head["ContentLength"], head["ETag"].strip('"'), head["LastModified"].timestamp())
    layout = RunLayout(S3Uri(bucket, "runs/e1/"))
    plan = write_manifest(s3, layout, [entry], 2, 0)
    for attempt in (1, 2):  # a first attempt, and a retried one (which HEADs the output first)
        assert worker.run(_settings(bucket, plan.manifest_uri, "e1", attempt=attempt), s3=s3io.client()) == worker.EXIT_DONE
        converted, failed = _records(s3, bucket, "e1", attempt=attempt)
        assert converted == [] and [(f.key, f.error_class, f.retryable) for f in failed] == [("in/a.PDF", "key-collision", False)]
    assert "crazy ones" in _md(s3, bucket, "a.md")[0].lower()
    # No failure marker: it would sit at the owner's marker path and make plans skip a.pdf.
    assert s3io.head(s3, bucket, failure_marker_key(S3Uri(bucket, OUT), "a.pdf")) is None
