"""S3 faults injected into the planner's and the worker's own clients (botocore event hooks).

Throttling (503 SlowDown), 500 InternalError and connection resets are retried with backoff by
botocore's standard retry mode (pdf2md.s3.RETRY_CONFIG): nothing in the project loops by hand, nothing is
lost or converted twice, and a fault that outlasts the retries becomes a retryable `s3-error` record.

botocore sleeps `time.sleep(delay)` between attempts in botocore.endpoint; the tests record those
delays (the backoff botocore chose) and skip the wait itself, so they stay fast.
"""

from __future__ import annotations

import io
import types
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import botocore.endpoint
import pytest
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from pdf2md import s3 as s3io
from pdf2md import worker
from pdf2md.contracts import FailureRecord, JobSettings, ManifestEntry, OutputMeta, RunLayout, S3Uri, is_retryable, output_key
from pdf2md.plan import plan_round
from tests.conftest import GOOD_SAMPLES, SAMPLES

REPO = Path(__file__).resolve().parents[2]
MAX_ATTEMPTS = 1 + s3io.RETRY_CONFIG.retries["max_attempts"]  # botocore's max_attempts counts retries
ERROR_XML = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message><RequestId>fault</RequestId></Error>'


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = io.BytesIO(body)

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self._body.read()

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return self._body.read(*args)


def _http_error(request: Any, status: int, code: str) -> AWSResponse:
    body = b"" if request.method == "HEAD" else ERROR_XML % code.encode()
    return AWSResponse(request.url, status, {"Content-Type": "application/xml", "x-amz-request-id": "fault"}, _Raw(body))


FAULTS: dict[str, Callable[[Any], AWSResponse]] = {
    "slowdown": lambda r: _http_error(r, 503, "SlowDown"),
    "internal": lambda r: _http_error(r, 500, "InternalError"),
}


class Injector:
    """Fails matching S3 requests before they leave (or, 'lost', after S3 has applied them).

    A rule is (operation, key fragment, plan): `plan` is the list of faults for the first calls to
    each matching key, or a single string for a fault that never ends.
    """

    def __init__(self, client: Any) -> None:
        self.rules: list[tuple[str, str, list[str] | str]] = []
        self.calls: Counter[tuple[str, str]] = Counter()
        self.injected: Counter[str] = Counter()
        self._http = urllib3.PoolManager()
        client.meta.events.register("before-send.s3", self._before_send)

    def add(self, operation: str, key_part: str, plan: list[str] | str) -> Injector:
        self.rules.append((operation, key_part, plan))
        return self

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        key = unquote(urlsplit(request.url).path)
        self.calls[(operation, key)] += 1
        n = self.calls[(operation, key)]
        for op, part, plan in self.rules:
            if op == operation and part in key:
                fault = plan if isinstance(plan, str) else (plan[n - 1] if n <= len(plan) else None)
                if fault:
                    self.injected[fault] += 1
                    return self._inject(fault, request)
        return None

    def _inject(self, fault: str, request: Any) -> AWSResponse:
        if fault == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        if fault == "unreachable":
            raise EndpointConnectionError(endpoint_url=request.url)
        if fault == "lost":  # S3 applies the request, the response never arrives
            body = request.body
            if hasattr(body, "read"):
                pos = body.tell()
                data = body.read()
                body.seek(pos)
                body = data
            self._http.request(request.method, request.url, body=body, headers=dict(request.headers), retries=False)
            raise ConnectionClosedError(endpoint_url=request.url)
        return FAULTS[fault](request)

    def attempts(self, operation: str, key_part: str = "") -> int:
        return sum(n for (op, key), n in self.calls.items() if op == operation and key_part in key)


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays botocore's retry handler asked for, in order (the sleeps themselves are skipped)."""
    delays: list[float] = []
    fake_time = types.SimpleNamespace(sleep=delays.append)
    monkeypatch.setattr(botocore.endpoint, "time", fake_time)
    return delays


def _client() -> Any:
    """The project's own client: RETRY_CONFIG (standard mode), pointed at the emulator by AWS_ENDPOINT_URL."""
    return s3io.client()


def _upload(s3: Any, bucket: str, n: int) -> list[str]:
    keys = []
    for i in range(n):
        sample = GOOD_SAMPLES[i % len(GOOD_SAMPLES)]
        key = f"in/d{i % 2}/{i:02d}-{sample}"
        s3.put_object(Bucket=bucket, Key=key, Body=(SAMPLES / sample).read_bytes())
        keys.append(key)
    return keys


def _settings(bucket: str, manifest_uri: str, run_id: str = "r1") -> JobSettings:
    return JobSettings(manifest_uri=manifest_uri, output_uri=f"s3://{bucket}/out/", run_uri=f"s3://{bucket}/runs/{run_id}/",
                       run_id=run_id, array_size=1, backend="text", pdf_timeout_s=60)


def _write_manifest(s3: Any, bucket: str, keys: list[str], run_id: str = "r1") -> str:
    layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
    head = {k: s3.head_object(Bucket=bucket, Key=k) for k in keys}
    entries = [ManifestEntry(bucket=bucket, key=k, rel=k.removeprefix("in/"), size=h["ContentLength"], etag=h["ETag"].strip('"'),
                             mtime=h["LastModified"].timestamp()) for k, h in head.items()]
    s3io.write_jsonl(s3, bucket, layout.manifest_key(0), entries)
    return layout.uri(layout.manifest_key(0))


def _shard_records(s3: Any, bucket: str, run_id: str = "r1") -> tuple[list[OutputMeta], list[FailureRecord]]:
    layout = RunLayout(S3Uri(bucket, f"runs/{run_id}/"))
    return (list(s3io.read_jsonl(s3, bucket, layout.results_key(0, 0, 1), OutputMeta)),
            list(s3io.read_jsonl(s3, bucket, layout.failures_key(0, 0, 1), FailureRecord)))


def test_the_project_client_uses_botocore_standard_retries() -> None:
    client = _client()
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
    source = "\n".join(p.read_text() for p in (REPO / "pdf2md" / n for n in ("s3.py", "plan.py", "worker.py", "progress.py", "reduce.py")))
    assert "time.sleep" not in source and "for attempt" not in source, "retries belong to botocore, not to hand-written loops"


def test_planner_lists_and_writes_the_manifest_through_throttling_500s_and_resets(
    s3: Any, bucket: str, backoff: list[float]
) -> None:
    keys = _upload(s3, bucket, 7)
    client = _client()
    faults = (Injector(client)
              .add("ListObjectsV2", f"/{bucket}", ["slowdown", "internal", "reset", "slowdown"])
              .add("PutObject", "manifest.jsonl", ["slowdown", "reset"]))
    layout = RunLayout(S3Uri(bucket, "runs/p1/"))
    plan = plan_round(client, layout, f"s3://{bucket}/in/", f"s3://{bucket}/out/", requested_array_size=3)

    assert faults.injected == Counter({"slowdown": 3, "internal": 1, "reset": 2})
    assert plan.entries == plan.listed == 7
    manifest = list(s3io.read_jsonl(s3, bucket, layout.manifest_key(0), ManifestEntry))
    assert sorted(e.key for e in manifest) == sorted(keys), "nothing lost or duplicated"
    # Every fault cost one retry, each after a jittered exponential backoff chosen by botocore.
    assert len(backoff) == 6 and all(0 <= d <= 20 for d in backoff) and sum(backoff) > 0


def test_worker_converts_everything_once_through_transient_faults(s3: Any, bucket: str, backoff: list[float]) -> None:
    keys = _upload(s3, bucket, 6)
    manifest_uri = _write_manifest(s3, bucket, keys)
    client = _client()
    faults = (Injector(client)
              .add("GetObject", "manifest.jsonl", ["slowdown", "reset"])
              .add("GetObject", "/in/d0/", ["slowdown", "internal"])   # every first and second GET of these PDFs
              .add("GetObject", "/in/d1/", ["reset"])
              .add("PutObject", "/out/", ["slowdown"])                  # the first PUT of every Markdown
              .add("PutObject", "/progress/", ["internal"])
              .add("PutObject", "/failures/", ["reset"]))
    assert worker.run(_settings(bucket, manifest_uri), s3=client) == worker.EXIT_DONE

    converted, failed = _shard_records(s3, bucket)
    assert failed == []
    sources = Counter(m.source_uri for m in converted)
    assert sorted(sources) == sorted(f"s3://{bucket}/{k}" for k in keys) and set(sources.values()) == {1}
    outputs = sorted(o.key for o in s3io.iter_objects(s3, S3Uri(bucket, "out/")))
    assert outputs == sorted(output_key(S3Uri(bucket, "out/"), k.removeprefix("in/")) for k in keys)
    assert faults.injected == Counter({"slowdown": 1 + 3 + 6, "internal": 3 + 1, "reset": 1 + 3 + 1})
    assert faults.attempts("ListObjectsV2") == 0, "a child lists nothing: the manifest says what exists"
    assert len(backoff) == sum(faults.injected.values())
    # Retries cost requests, not conversions: each PDF was fetched (1 + its faults) times, put twice.
    assert faults.attempts("GetObject", "/in/d0/") == 3 * 3 and faults.attempts("GetObject", "/in/d1/") == 3 * 2
    assert faults.attempts("PutObject", "/out/") == 6 * 2


def test_a_put_whose_response_is_lost_is_not_written_twice(s3: Any, bucket: str, backoff: list[float]) -> None:
    """The conditional PUT lands, the connection drops, botocore retries: If-None-Match turns the retry
    into 412, and the worker's HEAD finds its own write token, so the PDF counts as converted once."""
    keys = _upload(s3, bucket, 2)
    manifest_uri = _write_manifest(s3, bucket, keys)
    client = _client()
    faults = Injector(client).add("PutObject", "/out/", ["lost"])
    assert worker.run(_settings(bucket, manifest_uri), s3=client) == worker.EXIT_DONE
    assert faults.injected == Counter({"lost": 2})
    converted, failed = _shard_records(s3, bucket)
    assert failed == []
    outputs = [o for o in s3io.iter_objects(s3, S3Uri(bucket, "out/"))]
    assert len(outputs) == 2
    for out in outputs:
        body = s3.get_object(Bucket=bucket, Key=out.key)
        assert body["Metadata"]["source-etag"] and body["Body"].read()
    # Our own write, found by its x-amz-meta-write-id: reported as converted (results, pages), not skipped.
    assert sorted(m.source_uri for m in converted) == sorted(f"s3://{bucket}/{k}" for k in keys)
    assert _progress(s3, bucket).skipped == 0
    assert faults.attempts("PutObject", "/out/") == 4 and faults.attempts("HeadObject", "/out/") == 2


def _progress(s3: Any, bucket: str) -> Any:
    from pdf2md.contracts import ShardProgress

    layout = RunLayout(S3Uri(bucket, "runs/r1/"))
    return s3io.get_json(s3, bucket, layout.progress_key(0, 0), ShardProgress)


def test_faults_that_outlast_the_retries_become_retryable_s3_error_records(s3: Any, bucket: str, backoff: list[float]) -> None:
    keys = _upload(s3, bucket, 4)
    manifest_uri = _write_manifest(s3, bucket, keys)
    client = _client()
    bad_get, bad_put = keys[0], keys[1]
    faults = (Injector(client)
              .add("GetObject", bad_get, "internal")
              .add("PutObject", output_key(S3Uri(bucket, "out/"), bad_put.removeprefix("in/")), "slowdown"))
    assert worker.run(_settings(bucket, manifest_uri), s3=client) == worker.EXIT_DONE

    converted, failed = _shard_records(s3, bucket)
    assert sorted(m.source_uri for m in converted) == sorted(f"s3://{bucket}/{k}" for k in keys[2:])
    assert sorted((f.key, f.error_class, f.retryable) for f in failed) == sorted(
        [(bad_get, "s3-error", True), (bad_put, "s3-error", True)])
    assert is_retryable("s3-error")
    messages = {f.key: f.message for f in failed}
    assert "reading the PDF" in messages[bad_get] and "InternalError" in messages[bad_get]
    assert "writing the Markdown" in messages[bad_put] and "SlowDown" in messages[bad_put]
    # botocore gave up after max_attempts, with growing (jittered) backoff caps: 1, 2, 4, ... 20 s.
    assert faults.attempts("GetObject", bad_get) == MAX_ATTEMPTS
    assert faults.attempts("PutObject", "/out/") == MAX_ATTEMPTS + 2
    assert len(backoff) == 2 * (MAX_ATTEMPTS - 1)
    # Retryable failures leave no permanent marker: the next round (or plan) picks them up again.
    assert not [o for o in s3io.iter_objects(s3, S3Uri(bucket, "out/_pdf2md/"))]


def test_a_shard_that_cannot_read_its_manifest_exits_as_a_shard_fault(s3: Any, bucket: str, backoff: list[float]) -> None:
    keys = _upload(s3, bucket, 1)
    manifest_uri = _write_manifest(s3, bucket, keys)
    client = _client()
    faults = Injector(client).add("GetObject", "manifest.jsonl", "unreachable")
    assert worker.run(_settings(bucket, manifest_uri), s3=client) == worker.EXIT_SHARD_FAULT
    assert faults.attempts("GetObject", "manifest.jsonl") == MAX_ATTEMPTS
