"""The generation guard: a layout answer in the other generation's format is noted and warned about; three
pages in a row are a configuration fault that stops the shard with its PDFs retryable.

Both mistaken directions, with both tokenizer shapes (1.0's, and 1.5's with its separators) and recorded
answers of each format: a 1.5 checkpoint read as 1.0 (its tokenizer did not carry the tokens the detection
looks for) gets 1.5 brackets under the 1.0 rules; a 1.0 checkpoint read as 1.5 gets 1.0 lines.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pdf2md import s3 as s3io
from pdf2md import worker
from pdf2md.contracts import (
    ENV_MODEL_DIR,
    ENV_MODEL_URI,
    ERROR_CLASSES,
    FailureRecord,
    JobSettings,
    OutputMeta,
    RunLayout,
    S3Uri,
    ShardState,
)
from pdf2md.convert.dolphin.batching import AdaptiveBatcher
from pdf2md.convert.dolphin.guard import PAGES_IN_A_ROW, GenerationGuard
from pdf2md.convert.dolphin.layout import PageGeometry, other_format
from pdf2md.convert.dolphin.profiles import ENV_GENERATION, PROFILES, Profile, profile_for
from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT
from pdf2md.convert.dolphin.render import RenderedPage, pad_to_square
from pdf2md.convert.dolphin.scheduler import PageScheduler
from pdf2md.convert.errors import ConversionError
from pdf2md.plan import plan_round

FIXTURES = Path(__file__).parent / "fixtures"
ANSWERS = {name: (FIXTURES / f"layout_{name.replace('.', '_')}.txt").read_text() for name in ("1.0", "1.5", "v2")}
OTHER = {"1.0": "1.5", "1.5": "1.0"}


def test_the_other_format_is_seen_in_both_directions_and_only_then() -> None:
    assert other_format(ANSWERS["1.5"], PROFILES["1.0"]) == "bracketed"
    assert other_format(ANSWERS["v2"], PROFILES["1.0"]) == "bracketed"
    assert other_format(ANSWERS["1.0"], PROFILES["1.5"]) == "label-after"
    for name in ("1.0", "1.5", "v2"):
        assert other_format(ANSWERS[name], PROFILES[name]) is None
    for garbage in ("", "!!!!!!!!", "[12,", "the page shows a table"):
        assert other_format(garbage, PROFILES["1.0"]) is None and other_format(garbage, PROFILES["1.5"]) is None


class RecordedLayouts:
    """An engine of a profile read from a checkpoint, answering its layouts with a recorded answer."""

    def __init__(self, profile: Profile, answer: str) -> None:
        self.profile, self.answer = profile, answer
        self.calls: list[str] = []

    def frame(self, page: Image.Image) -> tuple[Image.Image, PageGeometry]:
        return pad_to_square(page)

    def generate(self, images: list[Image.Image], prompt: str) -> list[str | None]:
        self.calls.append(prompt)
        return [self.answer if prompt == LAYOUT_PROMPT else "text" for _ in images]


def _pages(count: int) -> list[RenderedPage]:
    square, geometry = pad_to_square(Image.new("RGB", (612, 792), "white"))
    return [RenderedPage(i, square, geometry, 0.0) for i in range(count)]


@pytest.fixture(params=["1.0", "1.5"])
def checkpoint(request: pytest.FixtureRequest, tiny_model_dir: Path, tiny_15_model_dir: Path) -> Path:
    """Each tokenizer shape: 1.0's, and 1.5's with [PAIR_SEP]/[RELATION_SEP] of their own."""
    return tiny_model_dir if request.param == "1.0" else tiny_15_model_dir


def test_pages_in_the_other_format_are_noted_then_fault_after_three_in_a_row(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ENV_GENERATION, raising=False)
    profile = profile_for(checkpoint)
    engine = RecordedLayouts(profile, ANSWERS[OTHER[profile.name]])
    guard = GenerationGuard()
    scheduler = PageScheduler(engine, AdaptiveBatcher(8, is_oom=lambda exc: False), pages_per_round=2, guard=guard)
    scheduler.submit("first", _pages(2))
    with caplog.at_level(logging.WARNING, logger="pdf2md.convert.dolphin.guard"):
        (first,) = scheduler.step()
    assert first.ok and all(OTHER[profile.name] in page.extra["generation_mismatch"] for page in first.pages.values())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{ENV_GENERATION}={OTHER[profile.name]}" in warnings[0]

    scheduler.submit("second", _pages(2))
    (second,) = scheduler.step()  # its first page is the third in a row
    assert isinstance(second.error, ConversionError) and second.error.error_class == "wrong-generation"
    assert second.error.retryable and ENV_GENERATION in second.error.message and guard.in_a_row >= PAGES_IN_A_ROW
    asked = len(engine.calls)
    scheduler.submit("later", _pages(1))
    (later,) = scheduler.step()
    assert later.error is guard.fault and len(engine.calls) == asked  # no model call for it


def test_a_page_in_the_profiles_own_format_resets_the_count(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_GENERATION, raising=False)
    profile = profile_for(tiny_model_dir)
    guard = GenerationGuard()
    for answer in [ANSWERS["1.5"], ANSWERS["1.5"], ANSWERS["1.0"], ANSWERS["1.5"], ANSWERS["1.5"]]:
        guard.check(answer, profile)
    assert guard.fault is None and guard.in_a_row == 2


def test_the_error_class_is_retryable() -> None:
    assert ERROR_CLASSES["wrong-generation"].retryable


def test_a_shard_stops_on_the_fault_and_its_pdfs_stay_retryable(
    tiny_model_dir: Path, s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real shard (feeder process, planners, the tiny 1.0 checkpoint) whose layouts come back in 1.5's
    format: the shard stops on a configuration fault, every PDF not published is a retryable
    `wrong-generation` failure naming the setting, and the shard's progress says failed."""
    pytest.importorskip("torch")
    from pdf2md.gpu_feeder import FeederPool
    from tests.dolphin.feeder_doubles import colour_pdf, other_generation_backend

    monkeypatch.setenv(ENV_MODEL_DIR, str(tiny_model_dir))
    monkeypatch.delenv(ENV_MODEL_URI, raising=False)
    monkeypatch.delenv(ENV_GENERATION, raising=False)
    names = [f"doc{i}.pdf" for i in range(6)]
    for i, name in enumerate(names):
        path = colour_pdf(tmp_path / name, (40 * i, 200, 90), pages=2)
        s3.put_object(Bucket=bucket, Key=f"in/{name}", Body=path.read_bytes())
    layout = RunLayout(S3Uri(bucket, "runs/r/"))
    plan = plan_round(s3, layout, f"s3://{bucket}/in/", f"s3://{bucket}/out/", requested_array_size=1)
    settings = JobSettings(manifest_uri=plan.manifest_uri, output_uri=f"s3://{bucket}/out/", run_uri=f"s3://{bucket}/runs/r/",
                           run_id="r", array_size=1, backend="dolphin", pdf_timeout_s=120, jobs=1)
    monkeypatch.setattr(worker, "FeederPool", functools.partial(FeederPool, factory=other_generation_backend, lanes=0))

    assert worker.run(settings, s3=s3) == worker.EXIT_SHARD_FAULT

    results = list(s3io.read_jsonl(s3, bucket, layout.results_key(0, 0, 1), OutputMeta))
    failures = list(s3io.read_jsonl(s3, bucket, layout.failures_key(0, 0, 1), FailureRecord))
    assert len(results) + len(failures) == len(names) and len(results) < PAGES_IN_A_ROW
    assert failures and all(f.error_class == "wrong-generation" and f.retryable for f in failures)
    assert all(f"{ENV_GENERATION}=1.5" in f.message for f in failures)
    assert all("generation_mismatch" in route["model"] for r in results for route in r.routes)
    progress = json.loads(s3.get_object(Bucket=bucket, Key=layout.progress_prefix(0) + "shard-00000.json")["Body"].read())
    assert progress["state"] == ShardState.FAILED
