"""One array child (`pdf2md worker`; batch_jobs/worker.py is the image's entrypoint to it).

Child i converts the manifest entries with index % size == i, and its start-up costs the same at any
collection size: one GET of its own shard manifest and its progress records, no listing. The planner's
decision travels in each entry (new, or the ETag of the stale output it replaces); conditional puts
settle races as before (two attempts can't both write one output). A shard that may have been worked on
already (a retried attempt, a resubmitted round, a rerun round's entry) checks each output with one HEAD
before converting. Everything this attempt could not finish is written down as a failure record.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pdf2md import progress
from pdf2md import s3 as s3io
from pdf2md.contracts import (
    CONVERTER_VERSION,
    SHARD_ENV_NAMES,
    ErrorKind,
    FailureRecord,
    JobSettings,
    ManifestEntry,
    OutputMeta,
    RunLayout,
    S3Uri,
    ShardProgress,
    ShardState,
    failure_marker_key,
    is_output_current,
    is_sharded_manifest,
    leaves_marker,
    load_jsonl,
    normalize_etag,
    output_key,
    output_owner,
    shard_manifest_key,
    shard_of,
    whole_manifest_key,
)
from pdf2md.convert import Conversion, ConversionError, ConvertOptions
from pdf2md.convert.pipeline import model_backend_for
from pdf2md.gpu_feeder import FeederPool, feeder_memory_mb
from pdf2md.isolation import ConverterPool
from pdf2md.outputs import Sidecar, needs_document, outputs_meta, page_markers, wants_figures, written
from pdf2md.shard_pipeline import MAX_IO_THREADS, SKIP, ItemFailed, ShardIO, ShardPipeline, converter_processes_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

log = logging.getLogger(__name__)

EXIT_DONE = 0
EXIT_SHARD_FAULT = 1
EXIT_INTERRUPTED = 143
S3_CONNECTIONS = 2 * MAX_IO_THREADS + 8
"""The S3 client's connection pool: the shard pipeline's downloaders and uploaders share one client."""
MARKDOWN_CONTENT_TYPE = "text/markdown; charset=utf-8"
WRITE_ID_META = "write-id"
"""x-amz-meta-write-id: a random token per Markdown PUT (see _publish)."""


@dataclass
class ShardWork:
    """What this attempt has done so far; turned into the progress, results and failure files."""

    settings: JobSettings
    entries: list[ManifestEntry]
    started_at: float = field(default_factory=time.time)
    converted: list[OutputMeta] = field(default_factory=list)
    failures: list[FailureRecord] = field(default_factory=list)
    skipped: int = 0
    pages: int = 0
    _fetched: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """The shard's pipeline threads record outcomes concurrently."""

    def record(self, entry: ManifestEntry, error_class: ErrorKind | str, message: str) -> FailureRecord:
        s = self.settings
        return FailureRecord.of(entry, error_class, message, shard=s.array_index, round=s.round, run_id=s.run_id)

    def add_failure(self, record: FailureRecord) -> None:
        log.warning("%s: %s: %s", record.key, record.error_class, record.message)
        with self._lock:
            self.failures.append(record)

    def fail(self, entry: ManifestEntry, error_class: ErrorKind | str, message: str) -> FailureRecord:
        record = self.record(entry, error_class, message)
        self.add_failure(record)
        return record

    def fetched(self, entry: ManifestEntry, etag: str) -> None:
        """The ETag of the version of `entry` this attempt downloaded."""
        with self._lock:
            self._fetched[entry.uri] = etag

    def fetched_etag(self, entry: ManifestEntry) -> str | None:
        with self._lock:
            return self._fetched.get(entry.uri)

    def skip(self) -> None:
        with self._lock:
            self.skipped += 1

    def add_converted(self, meta: OutputMeta, pages: int) -> None:
        with self._lock:
            self.converted.append(meta)
            self.pages += pages

    def progress(self, state: ShardState) -> ShardProgress:
        s = self.settings
        now = time.time()
        return ShardProgress(
            run_id=s.run_id,
            round=s.round,
            shard=s.array_index,
            attempt=s.attempt,
            state=state,
            assigned=len(self.entries),
            converted=len(self.converted),
            skipped=self.skipped,
            failed=len(self.failures),
            pages=self.pages,
            started_at=self.started_at,
            updated_at=now,
            seconds=round(now - self.started_at, 3),
        )


class StopFlag:
    """Set by SIGTERM (Spot reclaim): no new PDF starts, the ones in flight are cut."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self, signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        if not self._event.is_set():
            log.warning("received %s: finishing the shard's records and exiting", signal.Signals(signum).name)
        self._event.set()


def run(settings: JobSettings, s3: S3Client | None = None, stop: StopFlag | None = None) -> int:
    """Convert this child's shard; the exit code says whether the shard itself finished.

    The converter children start (and a GPU feeder loads its model) while the shard's start-up requests go
    out: its manifest and its first progress record, each a round trip to S3."""
    s3 = s3 or s3io.client(Config(max_pool_connections=S3_CONNECTIONS))
    stop = stop or StopFlag()
    layout = RunLayout(S3Uri.parse(settings.run_uri))
    try:
        passwords = s3io.read_passwords(s3, settings.passwords_uri) if settings.passwords_uri else ()
        feeder_mb = feeder_memory_mb(os.environ, settings.pdf_memory_mb)
    except ValueError as exc:
        return config_fault(s3, settings, str(exc))
    except (ClientError, BotoCoreError) as exc:
        log.error("cannot start shard %d: %s", settings.array_index, exc)
        return EXIT_SHARD_FAULT
    # chosen once here: `auto` then imports torch in this process only, not in every converter child
    model = "" if settings.backend == "text" else model_backend_for(settings.backend)
    options = ConvertOptions(backend=settings.backend, passwords=passwords, max_pages=settings.max_pages, model=model,
                             page_markers=page_markers(settings.outputs), figures=wants_figures(settings.outputs),
                             document=needs_document(settings.outputs))
    faulted = threading.Event()
    with _pool(settings, options, model, feeder_mb) as pool, ThreadPoolExecutor(1, thread_name_prefix="pdf2md-start") as starter:
        starting = starter.submit(pool.start, lambda: stop() or faulted.is_set())
        shard = _open_shard(s3, settings, layout)
        if shard is None:
            faulted.set()
            return EXIT_SHARD_FAULT
        state, reporter, recheck = shard
        io: ShardIO[ManifestEntry] = ShardIO(
            fetch=lambda entry, dest: _fetch(s3, settings, state, entry, recheck or entry.attempt > 1, dest),
            publish=lambda entry, fetched, conversion: _publish(s3, settings, state, entry, fetched, conversion),
            fail=lambda entry, error_class, message: _fail(s3, settings, state, entry, *_faulted(pool, stop, error_class, message)),
            skip=lambda entry: state.skip(),
            size_of=lambda entry: entry.size,
            progress=reporter.maybe_write,
        )
        starting.result()
        with tempfile.TemporaryDirectory(prefix="pdf2md-") as tmp:
            ShardPipeline(state.entries, io, pool.converters, Path(tmp), lambda: stop() or _config_fault(pool) is not None).run()
    fault = None if stop() else _config_fault(pool)
    final = ShardState.INTERRUPTED if stop() else ShardState.FAILED if fault else ShardState.DONE
    try:
        _write_records(s3, layout, state)
        reporter.write(final)
    except (ClientError, BotoCoreError) as exc:
        log.error("cannot write shard %d's records: %s", settings.array_index, exc)
        return EXIT_SHARD_FAULT
    log.info("shard %d %s: %d converted, %d skipped, %d failed, %d pages in %.1f s", settings.array_index, final,
             len(state.converted), state.skipped, len(state.failures), state.pages, time.time() - state.started_at)
    if fault is not None:
        log.error("shard %d stopped on a configuration fault (its PDFs stay retryable): %s", settings.array_index, fault.message)
        return EXIT_SHARD_FAULT
    return EXIT_INTERRUPTED if stop() else EXIT_DONE


def _config_fault(pool: ConverterPool | FeederPool) -> ConversionError | None:
    """A fault of the shard's set-up its converters found (the Dolphin generation read wrong): the shard stops."""
    feeder = getattr(pool, "feeder", None)  # a FeederPool's GPU feeder (ConverterPools have none)
    return None if feeder is None else feeder.fault


def _faulted(pool: ConverterPool | FeederPool, stop: StopFlag, error_class: str, message: str) -> tuple[str, str]:
    """A PDF cut by a stop on a configuration fault carries the fault (retryable), not `interrupted`."""
    fault = _config_fault(pool)
    if fault is not None and not stop() and error_class == ErrorKind.INTERRUPTED:
        return fault.error_class, fault.message
    return error_class, message


def _pool(settings: JobSettings, options: ConvertOptions, model: str, feeder_mb: int) -> ConverterPool | FeederPool:
    """The shard's converters: isolated CPU children, or (Dolphin) planner children beside one GPU feeder."""
    processes = converter_processes_for(model, settings.jobs, settings.pdf_memory_mb, feeder_mb)
    if model == "dolphin":
        log.info("shard %d: %d converter process(es) beside one GPU feeder (%d MB)", settings.array_index, processes, feeder_mb)
        return FeederPool(options, settings.pdf_timeout_s, settings.pdf_memory_mb, processes, feeder_memory_mb=feeder_mb)
    log.info("shard %d: %d converter process(es)", settings.array_index, processes)
    return ConverterPool(options, settings.pdf_timeout_s, settings.pdf_memory_mb, processes)


def _open_shard(s3: S3Client, settings: JobSettings, layout: RunLayout) -> tuple[ShardWork, _ProgressWriter, bool] | None:
    """Read this child's entries and publish it as running; None (logged) when S3 refuses either.

    Returns the shard's work record, its progress writer, and whether each output must be checked before
    converting (a retried attempt, or a shard that an earlier attempt already reported on)."""
    try:
        entries = read_shard(s3, settings)
    except (ClientError, BotoCoreError, ValueError) as exc:
        log.error("cannot start shard %d: %s", settings.array_index, exc)
        return None
    state = ShardWork(settings, entries)
    reporter = _ProgressWriter(s3, layout, state)
    try:
        earlier = reporter.write(ShardState.RUNNING)
    except (ClientError, BotoCoreError) as exc:
        log.error("cannot start shard %d: progress not written: %s", settings.array_index, exc)
        return None
    recheck = settings.attempt > 1 or earlier is not None
    log.info("shard %d/%d: %d PDF(s) assigned (round %d, attempt %d%s)", settings.array_index, settings.array_size,
             len(entries), settings.round, settings.attempt, "; outputs checked before converting" if recheck else "")
    return state, reporter, recheck


def read_shard(s3: S3Client, settings: JobSettings) -> list[ManifestEntry]:
    """This child's entries: its own object of a sharded manifest (one GET, its share of the bytes), or
    the index % size == i filter over a single JSON Lines manifest (hand-made ones, or an array of
    another size than the planner dealt for)."""
    uri = S3Uri.parse(settings.manifest_uri)
    key = uri.prefix
    if is_sharded_manifest(settings.manifest_uri):
        try:
            body = s3io.get_bytes(s3, uri.bucket, shard_manifest_key(uri.prefix, settings.array_index, settings.array_size))
            return list(load_jsonl(ManifestEntry, body.splitlines()))
        except ClientError as exc:
            if not s3io.is_not_found(exc):
                raise
        key = whole_manifest_key(uri.prefix)
        log.warning("no shard manifest for child %d of %d under %s: it was dealt for another array size; "
                    "reading the whole manifest", settings.array_index, settings.array_size, settings.manifest_uri)
    return [
        e for i, e in enumerate(s3io.read_jsonl(s3, uri.bucket, key, ManifestEntry))
        if shard_of(i, settings.array_size) == settings.array_index
    ]


def config_fault(s3: S3Client, settings: JobSettings, message: str) -> int:
    """The child's own configuration is at fault (its passwords object, its environment): every PDF of its
    shard is recorded `config-fault` with the message, so reduce reports it instead of rerunning the shard as
    interrupted every round. Permanent, and no failure marker: the configuration, not the PDF, is at fault."""
    log.error("shard %d cannot start: %s", settings.array_index, message)
    layout = RunLayout(S3Uri.parse(settings.run_uri))
    try:
        state = ShardWork(settings, read_shard(s3, settings))
        state.failures.extend(state.record(entry, ErrorKind.CONFIG_FAULT, message) for entry in state.entries)
        _write_records(s3, layout, state)
        _ProgressWriter(s3, layout, state).write(ShardState.FAILED)
    except (ClientError, BotoCoreError, ValueError) as exc:
        log.error("shard %d: its configuration fault was not recorded: %s", settings.array_index, exc)
    return EXIT_SHARD_FAULT


@dataclass(frozen=True)
class _Fetched:
    """What a fetch hands to the publish: the ETag of the output it replaces (None: a new output), and the
    ETag of the PDF version actually downloaded (what the Markdown is made from)."""

    replaces: str | None
    source_etag: str


def _fetch(s3: S3Client, settings: JobSettings, state: ShardWork, entry: ManifestEntry, recheck: bool, dest: Path) -> Any:
    """GET the PDF to `dest` (a HEAD first when it may be done already): a _Fetched, or SKIP when the output
    is up to date."""
    replaces: str | None = entry.replaces or None
    if recheck:
        output = S3Uri.parse(settings.output_uri)
        try:
            current = s3io.head(s3, output.bucket, output_key(output, entry.rel))
        except (ClientError, BotoCoreError) as exc:
            raise ItemFailed(ErrorKind.S3_ERROR, f"checking the output: {exc}") from None
        if current and (owner := _other_owner(current, entry)):
            raise ItemFailed(ErrorKind.KEY_COLLISION, _collision_message(owner))
        if current and is_output_current(current["LastModified"].timestamp(), current.get("Metadata", {}).get("source-etag"), entry):
            return SKIP
        replaces = normalize_etag(current["ETag"]) if current else None
    try:
        source_etag = _download(s3, entry, dest)
    except ClientError as exc:
        if s3io.is_missing_key(exc):
            raise ItemFailed(ErrorKind.GONE, "the PDF was deleted after the listing") from None
        raise ItemFailed(ErrorKind.S3_ERROR, f"reading the PDF: {exc}") from None
    except BotoCoreError as exc:
        raise ItemFailed(ErrorKind.S3_ERROR, f"reading the PDF: {exc}") from None
    state.fetched(entry, source_etag)
    return _Fetched(replaces, source_etag)


def _download(s3: S3Client, entry: ManifestEntry, dest: Path) -> str:
    """GET the listed version (If-Match its ETag); the ETag of what was read. A PDF replaced since the
    listing is read as it is now: its Markdown then names the version it was made from."""
    if entry.etag:
        try:
            return s3io.download(s3, entry.bucket, entry.key, dest, if_match=entry.etag)
        except ClientError as exc:
            if not s3io.is_precondition_failed(exc):
                raise
        log.info("%s: replaced since the listing; converting the current version", entry.key)
    return s3io.download(s3, entry.bucket, entry.key, dest)


def _source_changed(s3: S3Client, entry: ManifestEntry, converted_etag: str) -> bool:
    """After an output of `entry` is written: whether the PDF was replaced while it converted (one HEAD).

    Checked after the write, so that a replacement after this check is newer than the output, which every
    later plan then sees as stale. A PDF deleted meanwhile has not changed: its output stays, as any other."""
    try:
        now = s3io.head(s3, entry.bucket, entry.key)
    except (ClientError, BotoCoreError) as exc:
        log.warning("%s: could not check that the PDF is unchanged: %s", entry.key, exc)
        return False
    return now is not None and normalize_etag(now["ETag"]) != converted_etag


SOURCE_CHANGED_MESSAGE = "the PDF was replaced while it converted"


def _other_owner(output: HeadObjectOutputTypeDef, entry: ManifestEntry) -> str:
    """The PDF that an existing output was made from, when it is another than `entry`'s ('' otherwise)."""
    owner = output_owner(output.get("Metadata", {}))
    return owner if owner and owner != entry.uri else ""


def _collision_message(owner: str) -> str:
    return f"its Markdown belongs to {owner}, converted first"


def _fail(s3: S3Client, settings: JobSettings, state: ShardWork, entry: ManifestEntry, error_class: str, message: str) -> None:
    """A PDF the pipeline settled as failed; a permanent failure also leaves its marker beside the outputs
    (unless the PDF was replaced meanwhile: that failure was of a version that is gone, worth another try)."""
    record = state.record(entry, error_class, message)
    if not leaves_marker(record.error_class) or _mark_failed(s3, settings, state, entry, record):
        state.add_failure(record)
    else:
        state.fail(entry, ErrorKind.SOURCE_CHANGED, SOURCE_CHANGED_MESSAGE)


def _mark_failed(s3: S3Client, settings: JobSettings, state: ShardWork, entry: ManifestEntry, record: FailureRecord) -> bool:
    """A permanent failure leaves a marker beside the outputs, so later plans skip this version; False (and
    no marker) when the PDF was replaced since it was read."""
    output = S3Uri.parse(settings.output_uri)
    key = failure_marker_key(output, record.rel)
    try:
        s3io.put_json(s3, output.bucket, key, record)
        if (etag := state.fetched_etag(entry)) is not None and _source_changed(s3, entry, etag):
            s3io.delete(s3, output.bucket, key)
            return False
    except (ClientError, BotoCoreError) as exc:
        log.warning("%s: failure marker not written: %s", record.key, exc)
    return True


def _publish(s3: S3Client, settings: JobSettings, state: ShardWork, entry: ManifestEntry,
             fetched: _Fetched, conversion: Conversion) -> None:
    """Write the Markdown once: create it, or replace the stale one (ETag `replaces`) only if nobody else did first."""
    output = S3Uri.parse(settings.output_uri)
    key = output_key(output, entry.rel)
    result = written(key[len(output.dir_prefix):], conversion, settings.outputs, {"uri": entry.uri, "etag": entry.etag})
    meta = OutputMeta(
        source_uri=entry.uri,
        source_etag=fetched.source_etag,
        output_uri=f"s3://{output.bucket}/{key}",
        converter_version=CONVERTER_VERSION,
        backend=conversion.backend,
        pages=conversion.pages,
        seconds=round(conversion.seconds, 3),
        run_id=settings.run_id,
        gpu_peak_mb=conversion.gpu_peak_mb,
        routes=[r.to_dict() for r in conversion.routes],
        outputs=outputs_meta(settings.outputs),
        figures=result.figures if wants_figures(settings.outputs) else None,
    )
    sidecar_keys = [output.dir_prefix + car.rel for car in result.sidecars]
    if not _write_sidecars(s3, output, state, entry, result.sidecars):
        return
    body = result.markdown.encode()
    # A token for this one write: when botocore retries a PUT whose response was lost, the retry meets
    # 412 and the HEAD below finds this token, i.e. our own write, not another attempt's.
    write_id = uuid.uuid4().hex
    metadata = {**meta.to_s3_metadata(), WRITE_ID_META: write_id}
    try:
        won = s3io.put_conditional(s3, output.bucket, key, body, if_match=fetched.replaces, metadata=metadata,
                                   content_type=MARKDOWN_CONTENT_TYPE)
        if not won:
            current = s3io.head(s3, output.bucket, key)
            if current and current.get("Metadata", {}).get(WRITE_ID_META) == write_id:
                log.info("%s: written (a retried PUT whose first response was lost)", entry.key)
                won = True
            elif current and (owner := _other_owner(current, entry)):
                state.fail(entry, ErrorKind.KEY_COLLISION, _collision_message(owner))
                return
            elif current and normalize_etag(current.get("Metadata", {}).get("source-etag", "")) == fetched.source_etag:
                log.info("%s: another attempt wrote it first", entry.key)
                state.skip()
                return
            else:
                won = s3io.put_conditional(
                    s3, output.bucket, key, body, if_match=normalize_etag(current["ETag"]) if current else None,
                    metadata=metadata, content_type=MARKDOWN_CONTENT_TYPE,
                )
    except (ClientError, BotoCoreError) as exc:
        state.fail(entry, ErrorKind.S3_ERROR, f"writing the Markdown: {exc}")
        _remove(s3, output.bucket, sidecar_keys)
        return
    if not won:
        state.skip()
        return
    if _source_changed(s3, entry, fetched.source_etag):
        _withdraw(s3, output.bucket, key, entry)
        _remove(s3, output.bucket, sidecar_keys)
        state.fail(entry, ErrorKind.SOURCE_CHANGED, SOURCE_CHANGED_MESSAGE)
        return
    state.add_converted(meta, conversion.pages)


def _withdraw(s3: S3Client, bucket: str, key: str, entry: ManifestEntry) -> None:
    """Delete the Markdown just written of a version that is no longer the PDF: left there, it would be newer
    than the new version, and every later plan would take it for up to date."""
    try:
        s3io.delete(s3, bucket, key)
    except (ClientError, BotoCoreError) as exc:
        log.warning("%s: stale Markdown %s not deleted: %s", entry.key, key, exc)
def _write_sidecars(s3: S3Client, output: S3Uri, state: ShardWork, entry: ManifestEntry, cars: list[Sidecar]) -> bool:
    """The outputs besides the Markdown, written before it (pdf2md.outputs says why); False: the PDF failed,
    and what it had written of them is removed again."""
    done: list[str] = []
    try:
        for car in cars:
            s3io.put_bytes(s3, output.bucket, output.dir_prefix + car.rel, car.body, car.content_type)
            done.append(output.dir_prefix + car.rel)
    except (ClientError, BotoCoreError) as exc:
        state.fail(entry, ErrorKind.S3_ERROR, f"writing the outputs beside the Markdown: {exc}")
        _remove(s3, output.bucket, done)
        return False
    return True


def _remove(s3: S3Client, bucket: str, keys: list[str]) -> None:
    """Best effort: a PDF that failed leaves no sidecars (a plan would not take them for output anyway)."""
    try:
        s3io.delete_keys(s3, bucket, keys)
    except (ClientError, BotoCoreError) as exc:
        log.warning("%d output(s) of a failed PDF not removed: %s", len(keys), exc)


def _write_records(s3: S3Client, layout: RunLayout, state: ShardWork) -> None:
    """The attempt's failure and result files, written side by side (each is a round trip to S3)."""
    s = state.settings
    bucket = layout.run.bucket
    writes: list[tuple[str, list[FailureRecord] | list[OutputMeta]]] = [
        (layout.failures_key(s.round, s.array_index, s.attempt), state.failures),
        (layout.results_key(s.round, s.array_index, s.attempt), state.converted),
    ]
    with ThreadPoolExecutor(len(writes), thread_name_prefix="pdf2md-records") as writer:
        list(writer.map(lambda write: s3io.write_jsonl(s3, bucket, *write), writes))


class _ProgressWriter:
    """Rewrites the shard's progress (its record and its band) at most every progress.every_s (a PUT is not free)."""

    def __init__(self, s3: S3Client, layout: RunLayout, state: ShardWork) -> None:
        self._s3, self._layout, self._state = s3, layout, state
        self._every = progress.every_s(state.settings.array_size)
        self._last = 0.0

    def maybe_write(self) -> None:
        if time.monotonic() - self._last >= self._every:
            try:
                self.write(ShardState.RUNNING)
            except (ClientError, BotoCoreError) as exc:
                log.warning("progress not written (will retry): %s", exc)

    def write(self, state: ShardState) -> ShardProgress | None:
        """Publish the shard's record; returns the band's earlier record of this shard, if any."""
        self._last = time.monotonic()
        return progress.publish(self._s3, self._layout, self._state.progress(state))


def _bad_environment(env: dict[str, str], message: str) -> int:
    """Record a fault of the environment for the shard, when the variables naming the shard are sound."""
    try:
        settings = JobSettings.from_env({name: env[name] for name in SHARD_ENV_NAMES if name in env})
    except ValueError:
        return EXIT_SHARD_FAULT  # not even its shard is known: reduce finds it silent, and reruns it
    return config_fault(s3io.client(), settings, message)


def main(env: dict[str, str]) -> int:
    """Read the job's environment, install the SIGTERM handler, run the shard."""
    try:
        settings = JobSettings.from_env(env)
    except ValueError as exc:
        log.error("bad job environment: %s", exc)
        return _bad_environment(env, f"bad job environment: {exc}")
    stop = StopFlag()
    signal.signal(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, stop.set)
    return run(settings, stop=stop)
