"""The shard pipeline's scheduling: every PDF settled once, bounded queues, overlap of the stages, and stops.

Converters here are in-process stand-ins (the isolation children are tested in test_isolation_pool.py):
they make the pipeline's threading observable without a process start per test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pdf2md.convert import Conversion, ConversionError
from pdf2md.shard_pipeline import NOT_STARTED, NOT_WRITTEN, SKIP, Bounds, Budget, ItemFailed, ShardIO, ShardPipeline


@dataclass(frozen=True)
class Doc:
    name: str
    size: int = 100


def _conversion(markdown: str) -> Conversion:
    return Conversion(markdown=markdown, pages=1, backend="text", routes=[], seconds=0.0)


class Converter:
    """Reads the name the fetch wrote; `hook(name, cancel)` runs first (to block, fail or observe). Records
    each call's path and the `upcoming` it was handed."""

    def __init__(self, hook: Callable[[str, Callable[[], bool]], None] = lambda name, cancel: None, out: int = 10,
                 sends_ahead: bool = True) -> None:
        self.hook, self.out, self.sends_ahead = hook, out, sends_ahead
        self.started = False
        self.calls: list[tuple[Path, Path | None]] = []

    def start(self, cancel: Callable[[], bool]) -> None:
        self.started = True

    def convert(self, path: Path, cancel: Callable[[], bool], upcoming: Path | None = None) -> Conversion:
        self.calls.append((path, upcoming))
        name = path.read_bytes().split(b"\0")[0].decode()
        self.hook(name, cancel)
        return _conversion(f"# {name}\n" + "x" * self.out)


@dataclass
class Ledger:
    """The shard side: fetch writes `size` bytes per Doc; outcomes are recorded per name."""

    workdir: Path
    fetch_hook: Callable[[Doc], None] = lambda doc: None
    publish_hook: Callable[[Doc], None] = lambda doc: None
    outcomes: dict[str, list[str]] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    disk_seen: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def io(self) -> ShardIO[Doc]:
        return ShardIO(fetch=self.fetch, publish=self.publish, fail=self.fail, skip=self.skip, size_of=lambda d: d.size)

    def note(self, doc: Doc, outcome: str) -> None:
        with self.lock:
            self.outcomes.setdefault(doc.name, []).append(outcome)

    def fetch(self, doc: Doc, dest: Path) -> object:
        with self.lock:
            self.fetched.append(doc.name)
        self.fetch_hook(doc)
        if doc.name.startswith("missing"):
            raise ItemFailed("s3-error", "NoSuchKey")
        if doc.name.startswith("done"):
            return SKIP
        dest.write_bytes(doc.name.encode() + b"\0" * (doc.size - len(doc.name)))
        with self.lock:
            self.disk_seen.append(_bytes_on_disk(self.workdir))
        return f"ctx-{doc.name}"

    def publish(self, doc: Doc, context: object, conversion: Conversion) -> None:
        assert context == f"ctx-{doc.name}" and conversion.markdown.startswith(f"# {doc.name}")
        self.publish_hook(doc)
        self.note(doc, "published")

    def fail(self, doc: Doc, error_class: str, message: str) -> None:
        self.note(doc, f"{error_class}: {message}")

    def skip(self, doc: Doc) -> None:
        self.note(doc, "skipped")


def _bytes_on_disk(folder: Path) -> int:
    total = 0
    for path in folder.glob("*.pdf"):
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # converted and deleted meanwhile
            pass
    return total


def _run(docs: list[Doc], ledger: Ledger, converters: list[Converter], stop: Callable[[], bool] = lambda: False,
         **bounds: float) -> ShardPipeline[Doc]:
    pipeline = ShardPipeline(docs, ledger.io(), converters, ledger.workdir, stop, Bounds(**bounds))  # type: ignore[arg-type]
    pipeline.run()
    return pipeline


def _once(ledger: Ledger, docs: list[Doc]) -> dict[str, str]:
    assert sorted(ledger.outcomes) == sorted(d.name for d in docs)
    assert all(len(v) == 1 for v in ledger.outcomes.values()), ledger.outcomes
    return {k: v[0] for k, v in ledger.outcomes.items()}


def test_every_pdf_is_settled_once_with_its_own_outcome(tmp_path: Path) -> None:
    def hook(name: str, cancel: Callable[[], bool]) -> None:
        if name.startswith("bad"):
            raise ConversionError("corrupt", "pdfium cannot read it")
        if name.startswith("bug"):
            raise RuntimeError("converter bug")

    docs = [Doc(f"{kind}{i}") for i in range(6) for kind in ("ok", "bad", "missing", "done", "bug")]
    ledger = Ledger(tmp_path)
    converters = [Converter(hook), Converter(hook)]
    _run(docs, ledger, converters)
    outcomes = _once(ledger, docs)
    for name, outcome in outcomes.items():
        expected = {"ok": "published", "bad": "corrupt: pdfium cannot read it", "missing": "s3-error: NoSuchKey",
                    "done": "skipped", "bug": "conversion-error: RuntimeError: converter bug"}[name.rstrip("0123456789")]
        assert outcome == expected, name
    assert all(c.started for c in converters)
    assert list(tmp_path.iterdir()) == [], "every downloaded PDF is deleted"


def test_a_converter_that_sends_ahead_is_handed_its_next_pdf_and_then_asked_for_it(tmp_path: Path) -> None:
    def slow(name: str, cancel: Callable[[], bool]) -> None:
        time.sleep(0.01)  # downloads outpace conversions: PDFs wait, so there is one to send ahead

    docs = [Doc(f"ok{i}") for i in range(20)]
    ledger = Ledger(tmp_path)
    ahead, alone = Converter(slow), Converter(slow, sends_ahead=False)
    _run(docs, ledger, [ahead, alone])
    assert set(_once(ledger, docs).values()) == {"published"}
    handed = [upcoming for _, upcoming in ahead.calls]
    assert any(handed), "a PDF was waiting at some point"
    for (_, upcoming), (following, _) in zip(ahead.calls, ahead.calls[1:], strict=False):
        assert upcoming is None or upcoming == following, "the PDF handed ahead is the next one asked for"
    assert ahead.calls[-1][1] is None, "nothing is handed ahead of the last PDF"
    assert all(upcoming is None for _, upcoming in alone.calls), "a converter that shares its workers is never handed one"


def test_pdfs_are_fetched_in_manifest_order_by_one_downloader(tmp_path: Path) -> None:
    docs = [Doc(f"ok{i}") for i in range(12)]
    ledger = Ledger(tmp_path)
    _run(docs, ledger, [Converter()], downloaders=1)
    assert ledger.fetched == [d.name for d in docs]


def test_the_next_pdf_downloads_while_the_current_one_converts(tmp_path: Path) -> None:
    """Each conversion waits for the next PDF's fetch to begin: a shard doing one thing at a time would not."""
    docs = [Doc(f"ok{i}") for i in range(5)]
    began = {d.name: threading.Event() for d in docs}
    overlapped: list[bool] = []

    def convert(name: str, cancel: Callable[[], bool]) -> None:
        following = int(name[2:]) + 1
        if following < len(docs):
            overlapped.append(began[f"ok{following}"].wait(5))

    ledger = Ledger(tmp_path, fetch_hook=lambda d: began[d.name].set())
    _run(docs, ledger, [Converter(convert)], downloaders=1)
    assert overlapped == [True] * (len(docs) - 1)
    assert set(_once(ledger, docs).values()) == {"published"}


def test_uploads_run_behind_the_conversions(tmp_path: Path) -> None:
    """The converter goes on to the next PDF while a publish is still writing."""
    docs = [Doc(f"ok{i}") for i in range(4)]
    release = threading.Event()
    converted: list[str] = []
    waited: list[bool] = []

    def publish(doc: Doc) -> None:
        if doc.name == "ok0":
            waited.append(release.wait(5))

    def convert(name: str, cancel: Callable[[], bool]) -> None:
        converted.append(name)
        if name == "ok3":
            release.set()

    ledger = Ledger(tmp_path, publish_hook=publish)
    _run(docs, ledger, [Converter(convert)], downloaders=1)
    assert converted == ["ok0", "ok1", "ok2", "ok3"] and waited == [True]
    assert set(_once(ledger, docs).values()) == {"published"}


@pytest.mark.parametrize("converters", [1, 3])
def test_pdfs_on_disk_stay_under_the_byte_bound_whatever_their_sizes(tmp_path: Path, converters: int) -> None:
    sizes = [300, 50, 900, 120, 400, 700, 60, 2500, 80, 300, 650, 90]  # 2500: bigger than the bound, passes alone
    docs = [Doc(f"ok{i}", size) for i, size in enumerate(sizes)]
    ledger = Ledger(tmp_path)
    slow = [Converter(lambda name, cancel: time.sleep(0.005)) for _ in range(converters)]
    pipeline = _run(docs, ledger, slow, disk_bytes=1000, queued_pdfs=10, downloaders=4)
    assert set(_once(ledger, docs).values()) == {"published"}
    assert max(ledger.disk_seen) <= 2500
    assert all(seen <= 1000 or seen == 2500 for seen in ledger.disk_seen), "the big one is only ever on disk alone"
    assert pipeline.disk.peak_bytes <= 2500 and pipeline.disk.bytes == 0 and pipeline.disk.items == 0


def test_pdfs_on_disk_stay_under_the_count_bound(tmp_path: Path) -> None:
    docs = [Doc(f"ok{i}", 10) for i in range(20)]
    ledger = Ledger(tmp_path)
    pipeline = _run(docs, ledger, [Converter(lambda name, cancel: time.sleep(0.002))], queued_pdfs=3, downloaders=4)
    assert set(_once(ledger, docs).values()) == {"published"}
    assert pipeline.disk.peak_items <= 3
    assert all(seen <= 3 * 10 for seen in ledger.disk_seen)


def test_markdown_waiting_for_upload_stays_under_its_byte_bound(tmp_path: Path) -> None:
    docs = [Doc(f"ok{i}") for i in range(10)]
    waiting = {"now": 0, "max": 0}
    lock = threading.Lock()

    def converted(name: str, cancel: Callable[[], bool]) -> None:
        with lock:
            waiting["now"] += 1

    def publish(doc: Doc) -> None:
        time.sleep(0.01)
        with lock:
            waiting["max"] = max(waiting["max"], waiting["now"])
            waiting["now"] -= 1

    ledger = Ledger(tmp_path, publish_hook=publish)
    # Each Markdown is about 1,000 characters: at most 3 fit the bound, plus the one being converted.
    pipeline = _run(docs, ledger, [Converter(converted, out=1000)], upload_bytes=3100, uploaders=1)
    assert set(_once(ledger, docs).values()) == {"published"}
    assert pipeline.outbox.peak_bytes <= 3100
    assert waiting["max"] <= 4


def test_a_stop_mid_pipeline_flushes_finished_markdown_and_interrupts_the_rest(tmp_path: Path) -> None:
    docs = [Doc(f"ok{i}") for i in range(30)]
    stop = threading.Event()
    cut: list[str] = []

    def convert(name: str, cancel: Callable[[], bool]) -> None:
        if name == "ok4":
            stop.set()
            while not cancel():
                time.sleep(0.01)
            cut.append(name)
            raise ConversionError("interrupted", "the shard was stopped while this PDF was converting")

    def publish(doc: Doc) -> None:
        time.sleep(0.05)  # uploads lag behind: some are still queued at the stop

    ledger = Ledger(tmp_path, publish_hook=publish)
    started = time.monotonic()
    _run(docs, ledger, [Converter(convert)], stop.is_set, downloaders=1, uploaders=1)
    assert time.monotonic() - started < 10
    outcomes = _once(ledger, docs)
    assert [outcomes[f"ok{i}"] for i in range(4)] == ["published"] * 4, "finished Markdown is written after the stop"
    assert cut == ["ok4"] and outcomes["ok4"].startswith("interrupted: the shard was stopped while")
    assert all(outcomes[f"ok{i}"] == f"interrupted: {NOT_STARTED}" for i in range(5, 30))
    assert len(ledger.fetched) < 30, "no new PDF starts downloading after the stop"


def test_markdown_not_written_within_the_flush_window_is_recorded_interrupted(tmp_path: Path) -> None:
    docs = [Doc(f"ok{i}") for i in range(5)]
    stop = threading.Event()
    ok1_converted = threading.Event()

    def convert(name: str, cancel: Callable[[], bool]) -> None:
        if name == "ok1":
            ok1_converted.set()

    def publish(doc: Doc) -> None:
        if doc.name == "ok0":
            ok1_converted.wait(5)
            stop.set()
            time.sleep(0.5)  # S3 is slow: the flush window (0.2 s) ends while this write goes on

    ledger = Ledger(tmp_path, publish_hook=publish)
    started = time.monotonic()
    _run(docs, ledger, [Converter(convert)], stop.is_set, downloaders=1, uploaders=1, flush_s=0.2, abandon_s=1.0)
    assert time.monotonic() - started < 5
    outcomes = _once(ledger, docs)
    assert outcomes["ok0"] == "published", "a write in flight at the stop is waited for"
    assert outcomes["ok1"] == f"interrupted: {NOT_WRITTEN}"
    assert all(outcomes[f"ok{i}"] in (f"interrupted: {NOT_WRITTEN}", f"interrupted: {NOT_STARTED}") for i in range(2, 5))


def test_a_download_hung_at_the_stop_is_abandoned_and_records_nothing_later(tmp_path: Path) -> None:
    docs = [Doc("ok0"), Doc("ok1"), Doc("hang2"), Doc("ok3")]
    stop = threading.Event()
    unblock = threading.Event()

    def fetch(doc: Doc) -> None:
        if doc.name == "hang2":
            stop.set()
            unblock.wait(10)

    ledger = Ledger(tmp_path, fetch_hook=fetch)
    started = time.monotonic()
    _run(docs, ledger, [Converter()], stop.is_set, downloaders=1, abandon_s=0.2)
    assert time.monotonic() - started < 5
    before = {k: list(v) for k, v in ledger.outcomes.items()}
    unblock.set()
    time.sleep(0.3)  # the abandoned fetch finishes now: its PDF is already recorded and must stay so
    assert ledger.outcomes == before
    outcomes = _once(ledger, docs)
    assert outcomes["hang2"] == f"interrupted: {NOT_STARTED}" and outcomes["ok3"] == f"interrupted: {NOT_STARTED}"


def test_an_unexpected_fetch_error_fails_that_pdf_only(tmp_path: Path) -> None:
    def fetch(doc: Doc) -> None:
        if doc.name == "ok1":
            raise ConnectionResetError("peer reset")

    docs = [Doc(f"ok{i}") for i in range(3)]
    ledger = Ledger(tmp_path, fetch_hook=fetch)
    _run(docs, ledger, [Converter()])
    outcomes = _once(ledger, docs)
    assert outcomes["ok1"] == "s3-error: reading the PDF: ConnectionResetError: peer reset"
    assert outcomes["ok0"] == outcomes["ok2"] == "published"


def test_budget_lets_an_oversized_item_through_alone() -> None:
    budget = Budget(100, max_items=5)
    assert budget.acquire(500)
    assert not budget.acquire(10, give_up=lambda: True), "nothing joins it while it is held"
    budget.release(500)
    assert budget.acquire(60) and budget.acquire(40)
    assert not budget.acquire(1, give_up=lambda: True)
    assert budget.peak_bytes == 500


def test_a_pipeline_needs_a_converter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one converter"):
        ShardPipeline([], Ledger(tmp_path).io(), [], tmp_path, lambda: False)
