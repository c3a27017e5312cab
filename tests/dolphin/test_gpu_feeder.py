"""Cross-document GPU batching in the shard: pages of several PDFs share the tiny Dolphin's batches in one feeder
process, a PDF failing inside a shared batch fails alone, a lost feeder is restarted and its PDFs read again
once, and a stop comes back `interrupted` at once.

The feeder runs the real tiny model through feeder_doubles.spy_backend, which logs every model call with the
colours (so the PDFs) of the images it held.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pdf2md import s3 as s3io
from pdf2md import worker
from pdf2md.contracts import ENV_MODEL_DIR, ENV_MODEL_URI, FailureRecord, JobSettings, OutputMeta, RunLayout, S3Uri
from pdf2md.convert import Conversion, ConvertOptions
from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT
from pdf2md.gpu_feeder import FeederPool, feeder_memory_mb
from pdf2md.plan import plan_round
from pdf2md.shard_pipeline import ShardIO, ShardPipeline
from tests.conftest import SAMPLES
from tests.dolphin.feeder_doubles import ENV_DELAY_S, ENV_LOG, POISON, calls, colour_pdf, spy_backend
from tests.dolphin.test_scheduler import FakeEngine, pages_of, scheduler_for

pytest.importorskip("torch")
pytest.importorskip("transformers")

COLOURS = [(40, 200, 90), (30, 60, 220), (240, 200, 20), (120, 40, 160), (20, 180, 200)]
DOLPHIN = ConvertOptions(backend="dolphin", model="dolphin")


@pytest.fixture
def spy_log(tiny_15_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The spied feeder's environment (the spawned feeder inherits it); the log of its model calls."""
    log_path = tmp_path / "calls.jsonl"
    monkeypatch.setenv(ENV_MODEL_DIR, str(tiny_15_model_dir))
    monkeypatch.delenv(ENV_MODEL_URI, raising=False)
    monkeypatch.setenv(ENV_LOG, str(log_path))
    yield log_path


@pytest.fixture
def pdfs(tmp_path: Path) -> dict[str, Path]:
    """Five coloured PDFs (one or two pages) and a poisoned one."""
    folder = tmp_path / "pdfs"
    folder.mkdir()
    made = {f"doc{i}.pdf": colour_pdf(folder / f"doc{i}.pdf", colour, pages=1 + i % 2) for i, colour in enumerate(COLOURS)}
    made["poisoned.pdf"] = colour_pdf(folder / "poisoned.pdf", POISON)
    return made


def _mixed(rows: list[dict[str, Any]], layout: bool) -> list[set[tuple[int, ...]]]:
    """The PDFs (colours) of each model call of one stage that held more than one PDF."""
    stage = [set(r["colours"]) for r in rows if (r["prompt"] == LAYOUT_PROMPT) == layout]
    return [colours for colours in stage if len(colours) > 1]


def _run(names: list[str], pdfs: dict[str, Path], pool: FeederPool, workdir: Path,
         stop: Callable[[], bool] = lambda: False) -> tuple[dict[str, Conversion], dict[str, tuple[str, str]]]:
    converted: dict[str, Conversion] = {}
    failed: dict[str, tuple[str, str]] = {}

    def fetch(name: str, dest: Path) -> None:
        shutil.copyfile(pdfs.get(name, SAMPLES / name), dest)

    io: ShardIO[str] = ShardIO(fetch=fetch, publish=lambda name, _ctx, conversion: converted.__setitem__(name, conversion),
                               fail=lambda name, kind, message: failed.__setitem__(name, (kind, message)),
                               skip=lambda name: None, size_of=lambda name: 1000)
    inbox = workdir / "inbox"
    inbox.mkdir()
    ShardPipeline(names, io, pool.converters, inbox, stop).run()
    return converted, failed


def test_pages_of_several_pdfs_share_the_worker_batches_and_a_poisoned_pdf_fails_alone(
    spy_log: Path, pdfs: dict[str, Path], s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, path in pdfs.items():
        s3.put_object(Bucket=bucket, Key=f"in/{name}", Body=path.read_bytes())
    plan = plan_round(s3, RunLayout(S3Uri(bucket, "runs/r/")), f"s3://{bucket}/in/", f"s3://{bucket}/out/", requested_array_size=2)
    settings = JobSettings(manifest_uri=plan.manifest_uri, output_uri=f"s3://{bucket}/out/", run_uri=f"s3://{bucket}/runs/r/",
                           run_id="r", array_size=1, backend="dolphin", pdf_timeout_s=120, jobs=2)
    monkeypatch.setattr(worker, "FeederPool", functools.partial(FeederPool, factory=spy_backend))

    assert worker.run(settings, s3=s3) == worker.EXIT_DONE

    layout = RunLayout(S3Uri(bucket, "runs/r/"))
    results = list(s3io.read_jsonl(s3, bucket, layout.results_key(0, 0, 1), OutputMeta))
    failures = list(s3io.read_jsonl(s3, bucket, layout.failures_key(0, 0, 1), FailureRecord))
    assert sorted(r.source_uri.rsplit("/", 1)[1] for r in results) == sorted(n for n in pdfs if n != "poisoned.pdf")
    assert [(f.key, f.error_class) for f in failures] == [("in/poisoned.pdf", "conversion-error")]
    assert all(r.backend == "dolphin" and r.pages == len(r.routes) for r in results)
    rows = calls(spy_log)
    assert len({r["pid"] for r in rows}) == 1, "one feeder process read every page"
    assert _mixed(rows, layout=True), "a layout batch held pages of several PDFs"
    assert _mixed(rows, layout=False), "an element batch held crops of several PDFs"
    assert any(POISON in colours for colours in _mixed(rows, layout=True)), "the poisoned PDF failed inside a shared batch"


def test_a_text_only_pdf_never_reaches_the_feeder(spy_log: Path, pdfs: dict[str, Path], tmp_path: Path) -> None:
    auto = ConvertOptions(backend="auto", model="dolphin")
    pdfs["scan.pdf"] = colour_pdf(tmp_path / "scan.pdf", COLOURS[0], scanned=True)
    with FeederPool(auto, timeout_s=120, memory_mb=1024, size=1, feeder_memory_mb=2048, factory=spy_backend) as pool:
        converted, failed = _run(["crazyones.pdf", "scan.pdf"], pdfs, pool, tmp_path)
    assert not failed
    assert converted["crazyones.pdf"].backend == "text" and converted["scan.pdf"].backend == "dolphin"
    assert {c for r in calls(spy_log) for c in r["colours"]} == {COLOURS[0]}


def test_a_killed_feeder_is_restarted_and_its_pdfs_read_again_once(
    spy_log: Path, pdfs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DELAY_S, "0.2")
    names = [f"doc{i}.pdf" for i in range(4)]
    with FeederPool(DOLPHIN, timeout_s=120, memory_mb=1024, size=2, feeder_memory_mb=2048, factory=spy_backend) as pool:
        killed: list[int] = []

        def kill_at_first_call() -> None:
            deadline = time.monotonic() + 60
            while not calls(spy_log) and time.monotonic() < deadline:
                time.sleep(0.02)
            pid = calls(spy_log)[0]["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        killer = threading.Thread(target=kill_at_first_call, daemon=True)
        killer.start()
        converted, failed = _run(names, pdfs, pool, tmp_path)
        killer.join()
        restarts = pool.feeder.restarts
    assert not failed and sorted(converted) == names
    assert restarts == 1
    pids = {r["pid"] for r in calls(spy_log)}
    assert len(pids) == 2 and killed[0] in pids, "the first feeder was killed mid-run, a second read the pages"


def test_a_feeder_lost_twice_fails_the_pdfs_it_held(spy_log: Path, pdfs: dict[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DELAY_S, "0.2")
    with FeederPool(DOLPHIN, timeout_s=120, memory_mb=1024, size=1, feeder_memory_mb=2048, factory=spy_backend) as pool:

        def kill_each_feeder_at_its_first_call() -> None:
            killed: set[int] = set()
            deadline = time.monotonic() + 60
            while len(killed) < 2 and time.monotonic() < deadline:
                for pid in {r["pid"] for r in calls(spy_log)} - killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                time.sleep(0.02)

        killer = threading.Thread(target=kill_each_feeder_at_its_first_call, daemon=True)
        killer.start()
        converted, failed = _run(["doc0.pdf"], pdfs, pool, tmp_path)
        killer.join()
    assert not converted
    assert failed["doc0.pdf"][0] == "conversion-error" and "twice" in failed["doc0.pdf"][1]


def test_a_stop_cuts_the_pdfs_waiting_on_the_gpu_as_interrupted(spy_log: Path, pdfs: dict[str, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DELAY_S, "2")
    stop = threading.Event()
    names = [f"doc{i}.pdf" for i in range(5)]
    with FeederPool(DOLPHIN, timeout_s=120, memory_mb=1024, size=2, feeder_memory_mb=2048, factory=spy_backend) as pool:

        def stop_at_first_call() -> None:
            deadline = time.monotonic() + 60
            while not calls(spy_log) and time.monotonic() < deadline:
                time.sleep(0.02)
            stop.set()

        threading.Thread(target=stop_at_first_call, daemon=True).start()
        started = time.monotonic()
        converted, failed = _run(names, pdfs, pool, tmp_path, stop=stop.is_set)
        stopped_in = time.monotonic() - started
    assert not converted and sorted(failed) == names
    assert {kind for kind, _ in failed.values()} == {"interrupted"}
    assert stopped_in < 30


def test_a_pdfs_budget_counts_from_its_first_round_not_from_its_submission() -> None:
    now = [0.0]
    scheduler = scheduler_for(FakeEngine(), pages_per_round=2, clock=now)
    scheduler.submit(1, pages_of(1, 2), budget_s=5)
    scheduler.submit(2, pages_of(2, 2), budget_s=5)
    (first,) = scheduler.step()
    assert first.doc_id == 1 and first.ok
    now[0] = 100.0  # document 2 waited behind document 1: not charged to it
    results = {r.doc_id: r for r in scheduler.run()}
    assert results[2].ok and sorted(results[2].pages) == [0, 1]
    late = scheduler_for(FakeEngine(), pages_per_round=1, clock=now)
    late.submit(3, pages_of(3, 2), budget_s=5)
    late.step()
    now[0] = 200.0
    (result,) = late.run()
    assert result.error is not None and "deadline" in str(result.error)


def test_the_feeder_memory_limit_has_its_own_setting() -> None:
    assert feeder_memory_mb({}, 4096) == 4096
    assert feeder_memory_mb({"PDF2MD_GPU_FEEDER_MEMORY_MB": "8000"}, 4096) == 8000
    with pytest.raises(ValueError, match="PDF2MD_GPU_FEEDER_MEMORY_MB"):
        feeder_memory_mb({"PDF2MD_GPU_FEEDER_MEMORY_MB": "lots"}, 4096)
