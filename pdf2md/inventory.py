"""The input from an S3 Inventory report instead of a listing (AWS's advice for buckets of millions of objects).

An inventory configuration on the input bucket delivers, daily or weekly,
<destination prefix>/<source bucket>/<config id>/<YYYY-MM-DDTHH-MMZ>/manifest.json, which names its data
files (gzipped CSV, or Parquet) and their columns. The planner streams those files, keeps the current
versions under the input prefix, and plans from them exactly as from a listing: no LIST request on the
input at all. A report is a snapshot: PDFs added after it wait for the next report (or the S3-event DAG).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from pdf2md import s3 as s3io
from pdf2md.contracts import S3Uri, normalize_etag

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

_REPORT_DIR = re.compile(r"/(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}Z)/$")
_PARQUET_BATCH = 65_536
REQUIRED = ("Key", "Size", "LastModifiedDate", "ETag")
"""Fields the inventory configuration must include (its 'additional fields': Size, Last modified, ETag)."""
_PARQUET_COLUMNS = {"Key": "key", "Size": "size", "LastModifiedDate": "last_modified_date", "ETag": "e_tag",
                    "IsLatest": "is_latest", "IsDeleteMarker": "is_delete_marker"}


@dataclass(frozen=True)
class InventoryReport:
    """What a report's manifest.json says (the fields the planner uses)."""

    uri: S3Uri
    source_bucket: str
    file_format: str
    columns: tuple[str, ...]
    files: tuple[S3Uri, ...]

    @classmethod
    def parse(cls, uri: S3Uri, data: dict[str, Any]) -> InventoryReport:
        try:
            bucket = str(data["destinationBucket"]).removeprefix("arn:aws:s3:::") or uri.bucket
            fmt = str(data["fileFormat"])
            files = tuple(S3Uri(bucket, str(f["key"])) for f in data["files"])
            source = str(data["sourceBucket"])
            schema = str(data["fileSchema"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{uri} is not an S3 Inventory manifest.json (missing {exc})") from None
        return cls(uri, source, fmt, _columns(fmt, schema), files)


def _columns(file_format: str, schema: str) -> tuple[str, ...]:
    """CSV schemas are 'Bucket, Key, Size, ...'; Parquet schemas name snake_case columns (mapped back here)."""
    if file_format.upper() == "CSV":
        return tuple(c.strip() for c in schema.split(","))
    if file_format.lower() == "parquet":
        found = set(re.findall(r"\b([a-z_]+)\s*(?:\(|;)", schema))
        return tuple(name for name, column in _PARQUET_COLUMNS.items() if column in found)
    raise ValueError(f"S3 Inventory format {file_format!r} is not supported: configure CSV or Parquet")


def find_report(s3: S3Client, uri: str) -> S3Uri:
    """`uri` itself when it names a manifest.json, else the newest report's manifest.json under it
    (the <source bucket>/<config id>/ folder of an inventory configuration)."""
    loc = S3Uri.parse(uri)
    if loc.prefix.endswith("manifest.json"):
        return loc
    folders = [f for f in s3io.list_folder(s3, loc.bucket, loc.dir_prefix)[1] if _REPORT_DIR.search(f)]
    if not folders:
        raise ValueError(f"no S3 Inventory report (<YYYY-MM-DDTHH-MMZ>/manifest.json) under {uri}")
    return S3Uri(loc.bucket, max(folders, key=lambda f: _REPORT_DIR.search(f).group(1)) + "manifest.json")  # type: ignore[union-attr]


def read_report(s3: S3Client, uri: str) -> InventoryReport:
    loc = find_report(s3, uri)
    try:
        data = json.loads(s3io.get_bytes(s3, loc.bucket, loc.prefix))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{loc} is not JSON: {exc}") from None
    report = InventoryReport.parse(loc, data)
    missing = [c for c in REQUIRED if c not in report.columns]
    if missing:
        raise ValueError(f"the inventory at {loc} lacks {', '.join(missing)}: add them to the configuration's fields")
    return report


def iter_inventory(s3: S3Client, uri: str, source: S3Uri) -> Iterator[s3io.ObjectInfo]:
    """The current objects under `source` as the newest (or the named) report lists them."""
    report = read_report(s3, uri)
    if report.source_bucket != source.bucket:
        raise ValueError(f"the inventory at {report.uri} is of bucket {report.source_bucket!r}, not {source.bucket!r}")
    log.info("reading S3 Inventory %s: %d %s file(s)", report.uri, len(report.files), report.file_format)
    rows = _csv_rows if report.file_format.upper() == "CSV" else _parquet_rows
    for data_file in report.files:
        for row in rows(s3, data_file, report.columns):
            if row.get("IsLatest", True) is False or row.get("IsDeleteMarker", False) is True:
                continue
            key = str(row["Key"])
            if key.startswith(source.prefix) and row["Size"] is not None:
                yield s3io.ObjectInfo(key, int(row["Size"]), normalize_etag(str(row["ETag"] or "")), _epoch(row["LastModifiedDate"]))


def _csv_rows(s3: S3Client, data_file: S3Uri, columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Gzipped CSV without a header; keys are URL-encoded, booleans are 'true'/'false', absent values empty."""
    body = s3.get_object(Bucket=data_file.bucket, Key=data_file.prefix)["Body"]
    try:
        with gzip.GzipFile(fileobj=body) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
            for values in csv.reader(text):
                row: dict[str, Any] = dict(zip(columns, values, strict=False))
                row["Key"] = unquote_plus(row["Key"])
                row["Size"] = row["Size"] or None
                for flag in ("IsLatest", "IsDeleteMarker"):
                    if flag in row:
                        row[flag] = row[flag].lower() == "true"
                yield row
    finally:
        body.close()


def _parquet_rows(s3: S3Client, data_file: S3Uri, columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Parquet needs a seekable file: each data file is spooled to disk, then read in batches."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("reading a Parquet S3 Inventory needs pyarrow (pip install pyarrow), or configure CSV") from None
    wanted = {name: _PARQUET_COLUMNS[name] for name in columns if name in _PARQUET_COLUMNS}
    with tempfile.TemporaryFile() as fh:
        s3.download_fileobj(data_file.bucket, data_file.prefix, fh)
        fh.seek(0)
        for batch in pq.ParquetFile(fh).iter_batches(batch_size=_PARQUET_BATCH, columns=list(wanted.values())):
            data = batch.to_pydict()
            for i in range(batch.num_rows):
                yield {name: data[column][i] for name, column in wanted.items()}


def _epoch(value: Any) -> float:
    """CSV gives '2026-11-23T10:00:00.000Z'; Parquet a timestamp."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
