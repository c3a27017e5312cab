"""Planning a round: list the input, drop what is already converted, deal the rest across shards."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pdf2md import s3 as s3io
from pdf2md.contracts import (
    FAILED_DIR,
    FailureRecord,
    ManifestEntry,
    RunLayout,
    S3Uri,
    effective_array_size,
    is_pdf_key,
    is_up_to_date,
    markdown_rel,
    relative_key,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a round will do; `manifest_uri` is what the array children read."""

    manifest_uri: str
    round: int
    listed: int
    skipped: int
    known_failures: int
    collisions: int
    entries: int
    bytes: int
    array_size: int


@dataclass(frozen=True)
class OutputIndex:
    """One listing of the output prefix: Markdown and permanent-failure markers, by relative path."""

    markdown: dict[str, float]
    failed: dict[str, float]


def list_pdfs(s3: Any, input_uri: S3Uri) -> Iterator[ManifestEntry]:
    """Every PDF under the input prefix (paginated), as manifest entries."""
    for obj in s3io.iter_objects(s3, input_uri):
        if not is_pdf_key(obj.key):
            continue
        yield ManifestEntry(
            bucket=input_uri.bucket, key=obj.key, rel=relative_key(obj.key, input_uri.prefix),
            size=obj.size, etag=obj.etag, mtime=obj.mtime,
        )


def output_index(s3: Any, output_uri: S3Uri) -> OutputIndex:
    """One listing of the output prefix: relative Markdown path → LastModified, and the failure markers."""
    base = output_uri.dir_prefix
    failed_base = base + FAILED_DIR
    index = OutputIndex({}, {})
    for obj in s3io.iter_objects(s3, output_uri):
        if obj.key.startswith(failed_base) and obj.key.endswith(".json"):
            index.failed[obj.key[len(failed_base):-5] + ".md"] = obj.mtime
        elif obj.key.endswith(".md"):
            index.markdown[obj.key[len(base):]] = obj.mtime
    return index


def pending(entries: Iterable[ManifestEntry], index: OutputIndex, retry_failed: bool = False) -> tuple[list[ManifestEntry], int, int]:
    """Entries to convert; how many are up to date; how many failed for good on this very version."""
    todo: list[ManifestEntry] = []
    skipped = known_failures = 0
    for entry in entries:
        md = markdown_rel(entry.rel)
        if is_up_to_date(index.markdown.get(md), entry.mtime):
            skipped += 1
        elif not retry_failed and is_up_to_date(index.failed.get(md), entry.mtime):
            known_failures += 1
        else:
            todo.append(entry)
    return todo, skipped, known_failures


def drop_collisions(entries: Iterable[ManifestEntry]) -> tuple[list[ManifestEntry], list[ManifestEntry]]:
    """Two keys that map to one output (a.pdf, a.PDF, a//b.pdf) would overwrite each other: the first
    in key order keeps the output, the others are refused."""
    owner: dict[str, str] = {}
    kept: list[ManifestEntry] = []
    refused: list[ManifestEntry] = []
    for entry in sorted(entries, key=lambda e: e.key):
        md = markdown_rel(entry.rel)
        if owner.setdefault(md, entry.key) == entry.key:
            kept.append(entry)
        else:
            log.warning("refusing %s: its output %s belongs to %s", entry.key, md, owner[md])
            refused.append(entry)
    return kept, refused


def record_collisions(s3: Any, layout: RunLayout, refused: list[ManifestEntry], run_id: str) -> None:
    """Refused keys become permanent failure records of round 0, so the report names them."""
    if not refused:
        return
    records = [
        FailureRecord(key=e.key, rel=e.rel, bucket=e.bucket, etag=e.etag, size=e.size, mtime=e.mtime,
                      error_class="key-collision", message="another PDF's key maps to the same Markdown output",
                      retryable=False, attempt=e.attempt, shard=-1, round=0, run_id=run_id)
        for e in refused
    ]
    s3io.write_jsonl(s3, layout.run.bucket, layout.failures_prefix(0) + "planner.jsonl", records)


def deal(entries: list[ManifestEntry], array_size: int) -> list[ManifestEntry]:
    """Order entries so that child i (index % size == i) gets a fair share of the bytes.

    Largest first, dealt in a snake (0..n-1, then n-1..0): each child takes one PDF per lap, and the
    child that got the biggest of one lap gets the smallest of the next.
    """
    ordered = sorted(entries, key=lambda e: (-e.size, e.key))
    dealt: list[ManifestEntry] = []
    for start in range(0, len(ordered), array_size):
        lap = ordered[start : start + array_size]
        dealt.extend(lap[::-1] if (start // array_size) % 2 else lap)
    return dealt


def plan_round(
    s3: Any, layout: RunLayout, input_uri: str, output_uri: str, requested_array_size: int, retry_failed: bool = False,
    run_id: str = "",
) -> Plan:
    """List, exclude converted and known failures, deal, write the manifest: round 0's planning."""
    source, output = S3Uri.parse(input_uri), S3Uri.parse(output_uri)
    listed = list(list_pdfs(s3, source))
    unique, refused = drop_collisions(listed)
    record_collisions(s3, layout, refused, run_id)
    todo, skipped, known = pending(unique, output_index(s3, output), retry_failed)
    if known:
        log.info("%d PDF(s) skipped: they failed for good before and have not changed (retry_failed re-tries them)", known)
    return write_manifest(s3, layout, todo, requested_array_size, 0, listed=len(listed), skipped=skipped,
                          known_failures=known, collisions=len(refused))


def write_manifest(
    s3: Any, layout: RunLayout, todo: list[ManifestEntry], requested_array_size: int, rnd: int,
    listed: int | None = None, skipped: int = 0, known_failures: int = 0, collisions: int = 0,
) -> Plan:
    size = effective_array_size(len(todo), requested_array_size)
    key = layout.manifest_key(rnd)
    count = s3io.write_jsonl(s3, layout.run.bucket, key, deal(todo, size))
    log.info("round %d: %d PDF(s) to convert in %d shard(s), %d already converted", rnd, count, size, skipped)
    return Plan(
        manifest_uri=layout.uri(key), round=rnd,
        listed=len(todo) + skipped + known_failures + collisions if listed is None else listed,
        skipped=skipped, known_failures=known_failures, collisions=collisions, entries=count, bytes=sum(e.size for e in todo), array_size=size,
    )
