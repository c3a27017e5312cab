"""S3 ObjectCreated notifications (as delivered through SQS) → the manifest entries of a run."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from pdf2md.contracts import ManifestEntry, S3Uri, is_pdf_key, normalize_etag, relative_key

log = logging.getLogger(__name__)


def s3_records(messages: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The S3 event records inside SQS messages; test events and foreign bodies are skipped."""
    for message in messages:
        body = message.get("Body", message.get("body", ""))
        try:
            payload = json.loads(body) if isinstance(body, str) else body
        except json.JSONDecodeError:
            log.warning("ignoring an SQS message that is not JSON: %.80s", body)
            continue
        if isinstance(payload, dict) and isinstance(payload.get("Message"), str):
            payload = json.loads(payload["Message"])
        records = payload.get("Records") if isinstance(payload, dict) else None
        if not records:
            log.info("ignoring an SQS message without S3 records (%s)", payload.get("Event", "no Records") if isinstance(payload, dict) else "?")
            continue
        yield from records


def entries_from_messages(messages: Iterable[dict[str, Any]], input_uri: S3Uri) -> list[ManifestEntry]:
    """Each new PDF under the input prefix once (the latest event wins); other keys are logged and ignored."""
    latest: dict[str, ManifestEntry] = {}
    for record in s3_records(messages):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        obj = record["s3"]["object"]
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(obj["key"])
        if bucket != input_uri.bucket or not key.startswith(input_uri.prefix):
            log.info("ignoring s3://%s/%s: outside %s", bucket, key, input_uri)
            continue
        if not is_pdf_key(key):
            log.info("ignoring s3://%s/%s: not a PDF", bucket, key)
            continue
        latest[key] = ManifestEntry(
            bucket=bucket, key=key, rel=relative_key(key, input_uri.prefix), size=int(obj.get("size", 0)),
            etag=normalize_etag(obj.get("eTag", "")), mtime=_event_time(record.get("eventTime")),
        )
    return list(latest.values())


def _event_time(value: str | None) -> float:
    if not value:
        return 0.0
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
