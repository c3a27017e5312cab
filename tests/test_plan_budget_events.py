"""Planning, cost and S3 notifications: the logic the DAG tasks call."""

from __future__ import annotations

import json
from typing import Any

from pdf2md.budget import Price, estimate, estimate_pages, spot_price
from pdf2md.contracts import ManifestEntry, S3Uri, shard_of
from pdf2md.events import entries_from_messages
from pdf2md.plan import Triage, deal, drop_collisions, snake
from pdf2md.s3 import ObjectInfo


def _entry(key: str, size: int, mtime: float = 100.0) -> ManifestEntry:
    return ManifestEntry("b", key, key, size, "e", mtime)


def test_deal_balances_bytes_across_shards() -> None:
    entries = [_entry(f"{i}.pdf", size) for i, size in enumerate([100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 1])]
    dealt = deal(entries, 4)
    assert sorted(e.key for e in dealt) == sorted(e.key for e in entries)
    load = [sum(e.size for i, e in enumerate(dealt) if shard_of(i, 4) == s) for s in range(4)]
    assert max(load) - min(load) <= 30, load
    assert (dealt[0].size, dealt[4].size, dealt[7].size) == (100, 30, 60), "snake: lap 2 runs backwards"


def _triage(entries: list[ManifestEntry], outputs: list[ObjectInfo], retry_failed: bool = False) -> tuple[list[ManifestEntry], Triage]:
    triage = Triage(retry_failed=retry_failed)
    todo = list(triage.todo(entries, outputs, S3Uri("o", "md/"), lambda entry, owner: None))
    return sorted(todo, key=lambda e: e.key), triage


def test_triage_skips_up_to_date_outputs_and_known_failures() -> None:
    entries = [_entry("a.pdf", 1, mtime=10), _entry("b.pdf", 1, mtime=10), _entry("c.pdf", 1, mtime=10), _entry("d.pdf", 1, mtime=30)]
    outputs = [ObjectInfo("md/a.md", 5, "ea", 20), ObjectInfo("md/d.md", 5, "ed", 20), ObjectInfo("md/_pdf2md/failed/b.json", 5, "x", 20),
               ObjectInfo("md/notes.txt", 5, "n", 20)]
    todo, triage = _triage(entries, outputs)
    assert [e.key for e in todo] == ["c.pdf", "d.pdf"] and (triage.skipped, triage.known_failures) == (1, 1)
    assert [e.replaces for e in todo] == ["", "ed"], "a stale output's ETag travels in the manifest (If-Match)"
    todo, _ = _triage(entries, outputs, retry_failed=True)
    assert [e.key for e in todo] == ["b.pdf", "c.pdf", "d.pdf"]


def test_keys_that_share_an_output_keep_the_first_in_key_order() -> None:
    entries = [_entry("a.pdf", 1), _entry("A.pdf", 1), _entry("x/a.PDF", 1), _entry("x/a.pdf", 2), _entry("x//a.pdf", 3)]
    entries = [ManifestEntry("b", e.key, e.key.replace("//", "/"), e.size, "e") for e in entries]
    kept, refused = drop_collisions(entries)
    assert sorted(e.key for e in kept) == ["A.pdf", "a.pdf", "x//a.pdf"]
    assert sorted(e.key for e in refused) == ["x/a.PDF", "x/a.pdf"]


def test_snake_deals_a_stream_exactly_as_the_in_memory_deal() -> None:
    entries = [_entry(f"{i:03d}.pdf", (i * 7919) % 1000) for i in range(257)]
    for size in (1, 2, 10, 256, 257):
        ordered = sorted(entries, key=lambda e: (-e.size, e.key))
        streamed = list(snake(ordered, len(ordered), size))
        assert [e for _, _, e in streamed] == deal(entries, size)
        assert all(shard == shard_of(index, size) for index, shard, _ in streamed)


class _Ec2:
    def __init__(self, prices: list[str] | Exception) -> None:
        self.prices = prices

    def describe_spot_price_history(self, **_: Any) -> dict[str, Any]:
        if isinstance(self.prices, Exception):
            raise self.prices
        return {"SpotPriceHistory": [{"InstanceType": "g4dn.xlarge", "SpotPrice": p} for p in self.prices]}


def test_spot_price_is_used_only_when_plausible() -> None:
    from botocore.exceptions import EndpointConnectionError

    assert spot_price(_Ec2(["0.17", "0.19"]), "g4dn.xlarge", 0.526) == Price(0.19, "spot price history (g4dn.xlarge)")
    assert spot_price(_Ec2(["0.00001"]), "g4dn.xlarge", 0.526).per_hour == 0.526
    assert spot_price(_Ec2(["99"]), "g4dn.xlarge", 0.526).per_hour == 0.526
    assert spot_price(_Ec2([]), "g4dn.xlarge", 0.526).source.startswith("fallback")
    assert spot_price(_Ec2(EndpointConnectionError(endpoint_url="x")), "g4dn.xlarge", 0.526).per_hour == 0.526


def test_estimate_divides_work_by_parallelism() -> None:
    est = estimate(pages=7200, seconds_per_page=1.0, concurrency=2, price=Price(0.5, "test"))
    assert est.instance_hours == 1.0 and est.cost_usd == 0.5
    assert "7200 pages" in est.describe() and "$0.5000" in est.describe()
    assert estimate_pages(total_bytes=1_000_000, entries=3, bytes_per_page=100_000) == 10
    assert estimate_pages(total_bytes=10, entries=3, bytes_per_page=100_000) == 3


def _message(*records: dict[str, Any]) -> dict[str, Any]:
    return {"MessageId": "m", "Body": json.dumps({"Records": list(records)})}


def _record(key: str, bucket: str = "in", event: str = "ObjectCreated:Put", size: int = 10) -> dict[str, Any]:
    return {"eventName": event, "eventTime": "2026-11-23T10:00:00.000Z",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "eTag": "abc"}}}


def test_s3_notifications_become_entries_of_exactly_the_new_pdfs() -> None:
    messages = [
        _message(_record("pdfs/new+docs/%C3%A9t%C3%A9+plan.pdf"), _record("pdfs/readme.txt")),
        _message(_record("pdfs/a.PDF", size=5), _record("pdfs/a.PDF", size=7)),
        _message(_record("other/x.pdf"), _record("pdfs/gone.pdf", event="ObjectRemoved:Delete")),
        _message(_record("pdfs/x.pdf", bucket="elsewhere")),
        {"Body": json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})},
        {"Body": "not json"},
    ]
    entries = entries_from_messages(messages, S3Uri.parse("s3://in/pdfs/"))
    assert [(e.key, e.rel, e.size) for e in entries] == [("pdfs/new docs/été plan.pdf", "new docs/été plan.pdf", 10), ("pdfs/a.PDF", "a.PDF", 7)]
    assert entries[0].mtime > 0 and entries[0].etag == "abc"
