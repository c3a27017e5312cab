"""Every S3 call the project makes, in one place: listing, streaming JSON Lines, conditional puts.

Retries are botocore's (standard mode, bounded attempts): throttling, 5xx and connection resets are
retried with backoff there, never in hand-written loops here.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from pdf2md.contracts import Record, S3Uri, dump_jsonl, load_jsonl, normalize_etag

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)

RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8},
    connect_timeout=10,
    read_timeout=60,
    tcp_keepalive=True,
)
_SPOOL_BYTES = 8 * 1024 * 1024


def client(config: Config | None = None) -> Any:
    """An S3 client; AWS_ENDPOINT_URL (boto3 reads it) points it at an emulator."""
    return boto3.client("s3", config=RETRY_CONFIG.merge(config) if config else RETRY_CONFIG)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    mtime: float


def iter_objects(s3: Any, uri: S3Uri) -> Iterator[ObjectInfo]:
    """All objects under a prefix, one page (1,000 keys) in memory at a time."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.prefix):
        for obj in page.get("Contents", ()):
            yield ObjectInfo(obj["Key"], obj["Size"], normalize_etag(obj["ETag"]), obj["LastModified"].timestamp())


def read_jsonl(s3: Any, bucket: str, key: str, cls: type[R]) -> Iterator[R]:
    """Stream records from a JSON Lines object without holding it whole."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from load_jsonl(cls, body.iter_lines())
    finally:
        body.close()


def read_jsonl_if_exists(s3: Any, bucket: str, key: str, cls: type[R]) -> list[R]:
    try:
        return list(read_jsonl(s3, bucket, key, cls))
    except ClientError as exc:
        if is_not_found(exc):
            return []
        raise


def write_jsonl(s3: Any, bucket: str, key: str, records: Iterable[Record]) -> int:
    """Upload records as JSON Lines through a spooled file: bounded memory for any count."""
    count = 0
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as fh:
        for line in dump_jsonl(records):
            fh.write(line)
            count += 1
        fh.seek(0)
        s3.upload_fileobj(fh, bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
    return count


def put_json(s3: Any, bucket: str, key: str, record: Record) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=record.to_json().encode(), ContentType="application/json")


def get_json(s3: Any, bucket: str, key: str, cls: type[R]) -> R | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    return cls.from_json(body.decode())


def download(s3: Any, bucket: str, key: str, path: Path) -> None:
    """One GET streamed to disk (download_file would HEAD first: a request per PDF for nothing)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        with path.open("wb") as fh:
            for chunk in body.iter_chunks(1024 * 1024):
                fh.write(chunk)
    finally:
        body.close()


def put_conditional(
    s3: Any, bucket: str, key: str, body: bytes, *, if_match: str | None, metadata: dict[str, str], content_type: str
) -> bool:
    """Create (If-None-Match: *) or replace (If-Match: etag) an object; False when another writer won."""
    condition = {"IfMatch": f'"{if_match}"'} if if_match else {"IfNoneMatch": "*"}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata, ContentType=content_type, **condition)
    except ClientError as exc:
        if _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
            return False
        raise
    return True


def head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def is_not_found(exc: ClientError) -> bool:
    return _error_code(exc) in ("NoSuchKey", "404", "NotFound", "NoSuchBucket")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
