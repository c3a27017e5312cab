"""Every S3 call the project makes, in one place: listing, streaming JSON Lines, conditional puts.

Retries are botocore's (standard mode, bounded attempts): throttling, 5xx and connection resets are
retried with backoff there, never in hand-written loops here.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from pdf2md.contracts import Record, S3Uri, dump_jsonl, load_jsonl, normalize_etag, parse_passwords

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef, ListObjectsV2OutputTypeDef

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)

RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8},
    connect_timeout=10,
    read_timeout=60,
    tcp_keepalive=True,
)
SPOOL_BYTES = 8 * 1024 * 1024
LIST_THREADS = 16
"""Sub-folders listed at once by iter_objects_parallel (S3 serves ~5,500 LIST/s per prefix)."""
QUEUED_PAGES = 32
"""Pages listed ahead of the caller (32,000 keys at most)."""
PARTITION_DEPTH = 2
"""iter_objects_parallel lists folders this many '/' levels deep as tasks of their own."""


class _Delimited(TypedDict, total=False):
    """The optional Delimiter of a listing, typed so that ** passes it to the stubs' paginate()."""

    Delimiter: str


class _WriteCondition(TypedDict, total=False):
    """The optional precondition of a PUT, typed so that ** passes it to the stubs' put_object()."""

    IfMatch: str
    IfNoneMatch: str


def client(config: Config | None = None) -> S3Client:
    """An S3 client; AWS_ENDPOINT_URL (boto3 reads it) points it at an emulator."""
    return boto3.client("s3", config=RETRY_CONFIG.merge(config) if config else RETRY_CONFIG)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    mtime: float


def iter_objects(s3: S3Client, uri: S3Uri) -> Iterator[ObjectInfo]:
    """All objects under a prefix, one page (1,000 keys) in memory at a time."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.prefix):
        for obj in page.get("Contents", ()):
            yield ObjectInfo(obj["Key"], obj["Size"], normalize_etag(obj["ETag"]), obj["LastModified"].timestamp())


def _page_objects(page: ListObjectsV2OutputTypeDef) -> list[ObjectInfo]:
    return [ObjectInfo(o["Key"], o["Size"], normalize_etag(o["ETag"]), o["LastModified"].timestamp()) for o in page.get("Contents", ())]


def iter_objects_parallel(s3: S3Client, uri: S3Uri, threads: int | None = None) -> Iterator[ObjectInfo]:
    """All objects under a prefix, its folders listed in parallel (in no particular order).

    Ten million keys are 10,000 LIST pages: one after another, that is minutes. Folders down to
    PARTITION_DEPTH levels are listed with a '/' delimiter, each sub-folder found becoming a task of
    its own for `threads` workers; pages reach the caller through a bounded queue, so memory holds a few
    pages whatever the size. A flat prefix (no '/') is one listing.
    """
    threads = threads or LIST_THREADS
    pages: queue.Queue[Any] = queue.Queue(maxsize=QUEUED_PAGES)
    stop = threading.Event()
    lock = threading.Lock()
    outstanding = [1]
    pool = ThreadPoolExecutor(threads)

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def list_folder_task(prefix: str, depth: int) -> None:
        try:
            delimited: _Delimited = {"Delimiter": "/"} if depth < PARTITION_DEPTH else {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=prefix, **delimited):
                for sub in page.get("CommonPrefixes", ()):
                    with lock:
                        outstanding[0] += 1
                    pool.submit(list_folder_task, sub["Prefix"], depth + 1)
                if not offer(_page_objects(page)):
                    return
        except Exception as exc:  # handed to the consumer, which raises it
            offer(exc)
        offer(_DONE)

    pool.submit(list_folder_task, uri.prefix, 0)
    try:
        while True:
            item = pages.get()
            if item is _DONE:
                with lock:
                    outstanding[0] -= 1
                    if outstanding[0] == 0:
                        return
            elif isinstance(item, Exception):
                raise item
            else:
                yield from item
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def list_folder(s3: S3Client, bucket: str, prefix: str) -> tuple[list[ObjectInfo], list[str]]:
    """One delimited listing: the objects directly in `prefix`, and its sub-folders."""
    direct: list[ObjectInfo] = []
    subfolders: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        direct.extend(_page_objects(page))
        subfolders.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
    return direct, subfolders


_DONE = object()


def read_jsonl(s3: S3Client, bucket: str, key: str, cls: type[R], on_error: Callable[[str], None] | None = None) -> Iterator[R]:
    """Stream records from a JSON Lines object without holding it whole (`on_error`: see load_jsonl)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from load_jsonl(cls, body.iter_lines(), on_error)
    finally:
        body.close()


def read_jsonl_if_exists(s3: S3Client, bucket: str, key: str, cls: type[R]) -> list[R]:
    try:
        return list(read_jsonl(s3, bucket, key, cls))
    except ClientError as exc:
        if is_not_found(exc):
            return []
        raise


class JsonlUpload:
    """A JSON Lines object written line by line through a spooled file and uploaded on close (only when
    the block ends without an error, and not at all when empty unless `keep_empty`): bounded memory."""

    def __init__(self, s3: S3Client, bucket: str, key: str, *, keep_empty: bool = True) -> None:
        self._s3, self._bucket, self.key, self._keep_empty = s3, bucket, key, keep_empty
        self._fh = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        self.count = 0
        self.bytes = 0

    def __enter__(self) -> JsonlUpload:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None and (self.count or self._keep_empty):
                self._fh.seek(0)
                self._s3.upload_fileobj(self._fh, self._bucket, self.key, ExtraArgs={"ContentType": "application/x-ndjson"})
        finally:
            self._fh.close()

    def add_line(self, line: bytes) -> None:
        """One serialised record, ending in b'\n'."""
        self._fh.write(line)
        self.count += 1
        self.bytes += len(line)

    def add(self, record: Record) -> None:
        self.add_line((record.to_json() + "\n").encode())


def write_jsonl(s3: S3Client, bucket: str, key: str, records: Iterable[Record]) -> int:
    """Upload records as JSON Lines through a spooled file: bounded memory for any count."""
    with JsonlUpload(s3, bucket, key) as sink:
        for line in dump_jsonl(records):
            sink.add_line(line)
    return sink.count


def put_bytes(s3: S3Client, bucket: str, key: str, body: bytes, content_type: str = "application/x-ndjson") -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def delete_keys(s3: S3Client, bucket: str, keys: Sequence[str]) -> None:
    """Delete the keys, 1,000 per request (DeleteObjects' limit)."""
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})


def get_bytes(s3: S3Client, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def put_json(s3: S3Client, bucket: str, key: str, record: Record, *, if_match: str | None = None, if_none_match: bool = False) -> bool:
    """PUT one record; with a condition (If-Match etag / If-None-Match *), False when another writer won."""
    condition: _WriteCondition = {"IfMatch": f'"{if_match}"'} if if_match else {"IfNoneMatch": "*"} if if_none_match else {}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=record.to_json().encode(), ContentType="application/json", **condition)
    except ClientError as exc:
        if condition and _is_conflict(exc):
            return False
        raise
    return True


def get_json_with_etag(s3: S3Client, bucket: str, key: str, cls: type[R]) -> tuple[R | None, str | None]:
    """A record and the ETag it was read at (for a conditional rewrite); (None, None) when absent."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return None, None
        raise
    return cls.from_json(response["Body"].read().decode()), normalize_etag(response["ETag"])


def get_json(s3: S3Client, bucket: str, key: str, cls: type[R]) -> R | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    return cls.from_json(body.decode())


def read_passwords(s3: S3Client, uri: str) -> tuple[str, ...]:
    """The passwords object (a JSON list of strings). A ValueError naming it when it is missing, refused or
    malformed (a fault of the configuration); other S3 errors (throttling, 5xx past the retries) pass through."""
    loc = S3Uri.parse(uri)
    try:
        body = get_bytes(s3, loc.bucket, loc.prefix)
    except ClientError as exc:
        if is_not_found(exc) or _error_code(exc) in ("AccessDenied", "403"):
            raise ValueError(f"passwords_uri {uri} cannot be read: {_error_code(exc)}") from None
        raise
    return parse_passwords(body, uri)


def download(s3: S3Client, bucket: str, key: str, path: Path, *, if_match: str | None = None) -> str:
    """One GET streamed to disk (download_file would HEAD first: a request per PDF for nothing); the ETag of
    what was read. With `if_match`, only that version: another one raises a ClientError (is_precondition_failed)."""
    response = s3.get_object(Bucket=bucket, Key=key, IfMatch=f'"{if_match}"') if if_match else s3.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        with path.open("wb") as fh:
            for chunk in body.iter_chunks(1024 * 1024):
                fh.write(chunk)
    finally:
        body.close()
    return normalize_etag(response["ETag"])


def delete(s3: S3Client, bucket: str, key: str) -> None:
    s3.delete_object(Bucket=bucket, Key=key)


def put_conditional(
    s3: S3Client, bucket: str, key: str, body: bytes, *, if_match: str | None, metadata: dict[str, str], content_type: str
) -> bool:
    """Create (If-None-Match: *) or replace (If-Match: etag) an object; False when another writer won."""
    condition: _WriteCondition = {"IfMatch": f'"{if_match}"'} if if_match else {"IfNoneMatch": "*"}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata, ContentType=content_type, **condition)
    except ClientError as exc:
        if _is_conflict(exc):
            return False
        raise
    return True


def head(s3: S3Client, bucket: str, key: str) -> HeadObjectOutputTypeDef | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def is_not_found(exc: ClientError) -> bool:
    return _error_code(exc) in ("NoSuchKey", "404", "NotFound", "NoSuchBucket")


def is_missing_key(exc: ClientError) -> bool:
    """The object is not there (its bucket is): a key deleted since it was listed."""
    return _error_code(exc) in ("NoSuchKey", "404", "NotFound")


def is_precondition_failed(exc: ClientError) -> bool:
    """412: the object is not the version an If-Match named (it was replaced)."""
    return _error_code(exc) in ("PreconditionFailed", "412")


def _is_conflict(exc: ClientError) -> bool:
    """412 (the condition failed) or 409 (a concurrent conditional write): another writer won."""
    return _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
