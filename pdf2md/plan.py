"""Planning a round: list the input, drop what is already converted, deal the rest across shards.

Memory stays bounded at any size (ten million keys plan in the memory of a few thousand): listings stream
into external sorts (pdf2md.spool) and every manifest is uploaded as it is produced.

1. Triage: the input PDFs and the output objects (Markdown, permanent-failure markers) meet in one sort
   keyed by the output path. Each output path decides once: a collision (two keys, one output: the PDF
   the existing output was made from keeps it, one HEAD; else the first in key order), up to date, a
   known failure, or to convert, carrying the stale output's ETag (`replaces`), so that no child
   ever lists the outputs.
2. Deal: the entries to convert, largest first, dealt in a snake so each child gets a fair share of bytes.
3. Write: manifest.jsonl in index order, and one object per shard (a second sort, by shard): a child's
   start-up reads its own object and nothing else.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from pdf2md import s3 as s3io
from pdf2md.contracts import (
    DEFAULT_OUTPUTS,
    FAILED_DIR,
    MAX_ARRAY_SIZE,
    ErrorKind,
    FailureRecord,
    ManifestEntry,
    Plan,
    RunLayout,
    S3Uri,
    effective_array_size,
    is_pdf_key,
    is_up_to_date,
    markdown_rel,
    output_key,
    output_owner,
    relative_key,
    shard_manifest_key,
)
from pdf2md.inventory import iter_inventory
from pdf2md.spool import ExternalSort, sort_token

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["Plan", "deal", "drop_collisions", "list_pdfs", "plan_round", "record_collisions", "write_manifest"]

log = logging.getLogger(__name__)

UPLOAD_THREADS = 32
"""Shard manifests written at once (10,000 small PUTs)."""
CONFIRM_THREADS = 32
CONFIRM_BATCH = 256
"""Current Markdown objects HEADed at once, when a run asks for outputs a listing cannot show."""
Verdict = tuple[ManifestEntry, bool]
_MD, _JSON, _FAILED, _PDF = b"0", b"0j", b"1", b"2"
"""Line tags of the triage sort: within one output path, outputs come before the PDFs that map to it."""
T = TypeVar("T")
UNLISTED_OUTPUTS = frozenset({"figures", "page-markers"})
"""Outputs a listing of the output prefix cannot show are there (a PDF may have no figures; anchors are inside the Markdown)."""
_SIZE_WIDTH = 19
_SIZE_TOP = 10**_SIZE_WIDTH - 1


def list_pdfs(s3: S3Client, input_uri: S3Uri, inventory_uri: str | None = None) -> Iterator[ManifestEntry]:
    """Every PDF under the input prefix, from a parallel listing or from an S3 Inventory report."""
    objects = iter_inventory(s3, inventory_uri, input_uri) if inventory_uri else s3io.iter_objects_parallel(s3, input_uri)
    for obj in objects:
        if is_pdf_key(obj.key):
            yield ManifestEntry(bucket=input_uri.bucket, key=obj.key, rel=relative_key(obj.key, input_uri.prefix),
                                size=obj.size, etag=obj.etag, mtime=obj.mtime)


# --- 1. triage --------------------------------------------------------------------------------


@dataclass
class Triage:
    """What one pass over the input and the outputs decided; `todo` streams the entries to convert.

    `owner_of(output_rel)` names the PDF (s3:// URI) an existing output was made from: asked only where
    several PDFs map to one output that exists, so that the first converted keeps it whatever the key order.
    """

    retry_failed: bool = False
    owner_of: Callable[[str], str] | None = None
    listed: int = 0
    skipped: int = 0
    known_failures: int = 0
    collisions: int = 0
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    """What each PDF must have, present and newer than the PDF, to count as done."""
    recorded_outputs: Callable[[ManifestEntry], tuple[str, ...]] | None = None
    """The outputs a current Markdown says were written with it (a HEAD): asked only when `outputs` holds one
    that a listing cannot show (figures, page anchors)."""

    def todo(self, pdfs: Iterable[ManifestEntry], outputs: Iterable[s3io.ObjectInfo], output: S3Uri,
             refuse: Callable[[ManifestEntry, str], None]) -> Iterator[ManifestEntry]:
        """The entries to convert; `refuse(entry, owner_key)` hears of each key whose output another key owns."""
        with ExternalSort() as joined:
            for entry in pdfs:
                self.listed += 1
                joined.add(b"\t".join((sort_token(markdown_rel(entry.rel)), _PDF, sort_token(entry.key), entry.to_json().encode())) + b"\n")
            for line in _output_lines(outputs, output):
                joined.add(line)
            yield from self._confirmed(self._decide(joined.sorted(), refuse))

    def _decide(self, lines: Iterator[bytes], refuse: Callable[[ManifestEntry, str], None]) -> Iterator[Verdict]:
        group: bytes | None = None
        md: tuple[float, str] | None = None
        failed: float | None = None
        sidecar: float | None = None
        pdfs: list[ManifestEntry] = []
        for line in lines:
            token, tag, rest = line.rstrip(b"\n").split(b"\t", 2)
            if token != group:
                if pdfs and (verdict := self._settle(pdfs, md, failed, sidecar, refuse)) is not None:
                    yield verdict
                group, md, failed, sidecar, pdfs = token, None, None, None, []
            if tag == _MD:
                mtime, etag = rest.split(b"\t")
                md = (float(mtime), etag.decode())
            elif tag == _JSON:
                sidecar = float(rest)
            elif tag == _FAILED:
                failed = float(rest)
            else:
                pdfs.append(ManifestEntry.from_json(rest.split(b"\t", 1)[1].decode()))
        if pdfs and (verdict := self._settle(pdfs, md, failed, sidecar, refuse)) is not None:
            yield verdict

    def _settle(self, pdfs: list[ManifestEntry], md: tuple[float, str] | None, failed: float | None,
                sidecar: float | None, refuse: Callable[[ManifestEntry, str], None]) -> Verdict | None:
        """One output's PDFs (in key order): its owner's verdict; every other key is refused."""
        owner = pdfs[0]
        if len(pdfs) > 1 and md is not None and self.owner_of is not None:
            named = self.owner_of(markdown_rel(owner.rel))
            owner = next((e for e in pdfs if e.uri == named), owner)
        for entry in pdfs:
            if entry is not owner:
                self.collisions += 1
                refuse(entry, owner.key)
        return self._verdict(owner, md, failed, sidecar)

    def _verdict(self, entry: ManifestEntry, md: tuple[float, str] | None, failed: float | None,
                 sidecar: float | None = None) -> Verdict | None:
        """(the entry to convert, whether its Markdown is current and must still say what was written with it)."""
        if md is not None and is_up_to_date(md[0], entry.mtime):
            if "json" in self.outputs and not is_up_to_date(sidecar, entry.mtime):
                return replace(entry, replaces=md[1]), False  # its JSON is missing or older than the PDF
            if self.recorded_outputs is not None:
                return replace(entry, replaces=md[1]), True
            self.skipped += 1
            return None
        if not self.retry_failed and is_up_to_date(failed, entry.mtime):
            self.known_failures += 1
            return None
        return (replace(entry, replaces=md[1]) if md is not None else entry), False


    def _confirmed(self, verdicts: Iterator[Verdict]) -> Iterator[ManifestEntry]:
        """The entries to convert, once the current Markdown of each unconfirmed one was asked (in parallel,
        CONFIRM_BATCH at a time) which outputs were written with it: done only when they cover `outputs`."""
        ask = self.recorded_outputs
        if ask is None:
            yield from (entry for entry, _ in verdicts)
            return
        wanted = set(self.outputs)
        with ThreadPoolExecutor(CONFIRM_THREADS, thread_name_prefix="pdf2md-confirm") as pool:
            while batch := list(itertools.islice(verdicts, CONFIRM_BATCH)):
                asked = iter(pool.map(ask, [entry for entry, confirm in batch if confirm]))
                for entry, confirm in batch:
                    if not confirm:
                        yield entry
                    elif wanted <= set(next(asked)):
                        self.skipped += 1
                    else:
                        yield entry


def _output_lines(outputs: Iterable[s3io.ObjectInfo], output: S3Uri) -> Iterator[bytes]:
    """Markdown (with its LastModified and ETag), JSON beside it and failure markers, keyed by the relative
    Markdown path."""
    base = output.dir_prefix
    failed_base = base + FAILED_DIR
    for obj in outputs:
        if obj.key.startswith(failed_base) and obj.key.endswith(".json"):
            yield b"\t".join((sort_token(obj.key[len(failed_base):-5] + ".md"), _FAILED, repr(obj.mtime).encode())) + b"\n"
        elif obj.key.endswith(".json") and obj.key.startswith(base):
            yield b"\t".join((sort_token(obj.key[len(base):-5] + ".md"), _JSON, repr(obj.mtime).encode())) + b"\n"
        elif obj.key.endswith(".md") and obj.key.startswith(base):
            yield b"\t".join((sort_token(obj.key[len(base):]), _MD, repr(obj.mtime).encode(), obj.etag.encode())) + b"\n"


def _owner(s3: S3Client, output: S3Uri, rel_md: str) -> str:
    """The PDF an existing output was made from (one HEAD; '' when it is gone or names none)."""
    head = s3io.head(s3, output.bucket, output.dir_prefix + rel_md)
    return output_owner(head.get("Metadata", {})) if head is not None else ""


def drop_collisions(entries: Iterable[ManifestEntry]) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """Two keys that map to one output (a.pdf, a.PDF, a//b.pdf) would overwrite each other: the first
    in key order keeps the output, the others are refused."""
    refused: list[ManifestEntry] = []

    def refuse(entry: ManifestEntry, owner: str) -> None:
        log.warning("refusing %s: its output %s belongs to %s", entry.key, markdown_rel(entry.rel), owner)
        refused.append(entry)

    kept = list(Triage(retry_failed=True).todo(entries, (), S3Uri("", ""), refuse))
    return kept, refused


_COLLISION_MESSAGE = "another PDF's key maps to the same Markdown output"


def _collision(entry: ManifestEntry, run_id: str) -> FailureRecord:
    return FailureRecord.of(entry, ErrorKind.KEY_COLLISION, _COLLISION_MESSAGE, shard=-1, round=0, run_id=run_id)


def record_collisions(s3: S3Client, layout: RunLayout, refused: list[ManifestEntry], run_id: str) -> None:
    """Refused keys become permanent failure records of round 0, so the report names them."""
    if refused:
        s3io.write_jsonl(s3, layout.run.bucket, _collisions_key(layout), (_collision(e, run_id) for e in refused))


def _collisions_key(layout: RunLayout) -> str:
    return layout.failures_prefix(0) + "planner.jsonl"


def plan_round(
    s3: S3Client, layout: RunLayout, input_uri: str, output_uri: str, requested_array_size: int, retry_failed: bool = False,
    run_id: str = "", *, inventory_uri: str | None = None, outputs: tuple[str, ...] = DEFAULT_OUTPUTS,
) -> Plan:
    """List (or read the inventory), exclude converted and known failures, deal, write the manifests: round 0.

    A PDF is converted unless every output in `outputs` is present and newer than it: the Markdown and the
    JSON by the listing; figures and page anchors, which a listing cannot show, by the current Markdown's
    x-amz-meta-outputs (one HEAD per such PDF, only in runs that ask for them)."""
    source, output = S3Uri.parse(input_uri), S3Uri.parse(output_uri)
    unlisted = bool(set(outputs) & UNLISTED_OUTPUTS)
    triage = Triage(retry_failed=retry_failed, owner_of=lambda rel_md: _owner(s3, output, rel_md), outputs=outputs,
                    recorded_outputs=(lambda entry: recorded_outputs(s3, output, entry)) if unlisted else None)
    with s3io.JsonlUpload(s3, layout.run.bucket, _collisions_key(layout), keep_empty=False) as refused:
        def refuse(entry: ManifestEntry, owner: str) -> None:
            log.warning("refusing %s: its output %s belongs to %s", entry.key, markdown_rel(entry.rel), owner)
            refused.add(_collision(entry, run_id))

        todo = triage.todo(list_pdfs(s3, source, inventory_uri), s3io.iter_objects_parallel(s3, output), output, refuse)
        plan = write_manifest(s3, layout, todo, requested_array_size, 0, counts=triage)
    if triage.known_failures:
        log.info("%d PDF(s) skipped: they failed for good before and have not changed (retry_failed re-tries them)",
                 triage.known_failures)
    return plan


def recorded_outputs(s3: S3Client, output: S3Uri, entry: ManifestEntry) -> tuple[str, ...]:
    """The outputs the entry's Markdown says were written with it (Markdown only when it says none)."""
    head = s3io.head(s3, output.bucket, output_key(output, entry.rel))
    if head is None:
        return ()
    listed = {k.lower(): v for k, v in head.get("Metadata", {}).items()}.get("outputs")
    return tuple(listed.split(",")) if listed else DEFAULT_OUTPUTS


# --- 2. deal ----------------------------------------------------------------------------------


def _size_line(entry: ManifestEntry) -> bytes:
    """Largest first, then by key: the deal's order, as a byte-sortable line carrying the entry."""
    return b"%0*d\t%s\t%s\n" % (_SIZE_WIDTH, _SIZE_TOP - entry.size, sort_token(entry.key), entry.to_json().encode())


def snake(ordered: Iterable[T], count: int, array_size: int) -> Iterator[tuple[int, int, T]]:
    """(index, shard, item) in index order for items given largest first.

    Each child takes one item per lap of `array_size`; odd laps run backwards, so the child that got the
    biggest of one lap gets the smallest of the next. Holds one lap (at most MAX_ARRAY_SIZE items).
    """
    lap: list[T] = []
    laps = 0
    for item in ordered:
        lap.append(item)
        if len(lap) == array_size or laps * array_size + len(lap) == count:
            base = laps * array_size
            for offset, dealt in enumerate(lap[::-1] if laps % 2 else lap):
                yield base + offset, offset, dealt
            lap, laps = [], laps + 1


def deal(entries: list[ManifestEntry], array_size: int) -> list[ManifestEntry]:
    """Order entries so that child i (index % size == i) gets a fair share of the bytes (in memory)."""
    ordered = sorted(entries, key=lambda e: (-e.size, sort_token(e.key)))
    return [entry for _index, _shard, entry in snake(ordered, len(ordered), array_size)]


# --- 3. write ---------------------------------------------------------------------------------


def write_manifest(
    s3: S3Client, layout: RunLayout, todo: Iterable[ManifestEntry], requested_array_size: int, rnd: int,
    listed: int | None = None, skipped: int = 0, known_failures: int = 0, collisions: int = 0, *, counts: Triage | None = None,
) -> Plan:
    """Deal `todo` and write round `rnd`'s manifests and plan; `counts` (a finished Triage) supplies the figures."""
    total_bytes = 0
    with ExternalSort() as by_size:
        for entry in todo:
            total_bytes += entry.size
            by_size.add(_size_line(entry))
        if counts is not None:
            listed, skipped, known_failures, collisions = counts.listed, counts.skipped, counts.known_failures, counts.collisions
        count = by_size.count
        size = effective_array_size(count, requested_array_size)
        _write_dealt((line.split(b"\t", 2)[2] for line in by_size.sorted()), count, size, s3, layout, rnd)
    plan = Plan(
        manifest_uri=layout.uri(layout.shard_manifests_prefix(rnd)), round=rnd,
        listed=count + skipped + known_failures + collisions if listed is None else listed,
        skipped=skipped, known_failures=known_failures, collisions=collisions, entries=count, bytes=total_bytes, array_size=size,
    )
    s3io.put_json(s3, layout.run.bucket, layout.plan_key(rnd), plan)
    log.info("round %d: %d PDF(s) to convert in %d shard(s), %d already converted", rnd, count, size, skipped)
    return plan


def _write_dealt(ordered: Iterable[bytes], count: int, array_size: int, s3: S3Client, layout: RunLayout, rnd: int) -> None:
    """manifest.jsonl in index order while the same lines go to a sort by shard; then one object per shard."""
    bucket = layout.run.bucket
    with ExternalSort() as by_shard:
        with s3io.JsonlUpload(s3, bucket, layout.manifest_key(rnd)) as whole:
            for index, shard, line in snake(ordered, count, array_size):
                whole.add_line(line)
                by_shard.add(b"%05d%012d" % (shard, index) + line)
        _upload_shards(s3, bucket, layout.shard_manifests_prefix(rnd), by_shard.sorted(), array_size)


def _upload_shards(s3: S3Client, bucket: str, prefix: str, lines: Iterator[bytes], array_size: int) -> None:
    """Group the shard-sorted lines into one PUT per shard (every shard gets an object, even an empty one)."""
    assert array_size <= MAX_ARRAY_SIZE
    slots = threading.BoundedSemaphore(UPLOAD_THREADS * 2)
    pending: list[Future[None]] = []

    def put(shard: int, body: bytes) -> None:
        try:
            s3io.put_bytes(s3, bucket, shard_manifest_key(prefix, shard, array_size), body)
        finally:
            slots.release()

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        def submit(shard: int, body: bytes) -> None:
            slots.acquire()
            pending.append(pool.submit(put, shard, body))

        current, body = 0, bytearray()
        for line in lines:
            shard = int(line[:5])
            while current < shard:
                submit(current, bytes(body))
                current, body = current + 1, bytearray()
            body += line[17:]
        while current < array_size:
            submit(current, bytes(body))
            current, body = current + 1, bytearray()
    for future in pending:
        future.result()
