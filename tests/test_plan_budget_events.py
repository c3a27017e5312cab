"""Planning, cost and S3 notifications: the logic the DAG tasks call."""

from __future__ import annotations

import json
from typing import Any

from pdf2md.budget import Price, estimate, estimate_pages, spot_price
from pdf2md.contracts import ManifestEntry, S3Uri, shard_of
from pdf2md.events import entries_from_messages
from pdf2md.plan import OutputIndex, deal, pending


def _entry(key: str, size: int, mtime: float = 100.0) -> ManifestEntry:
    return ManifestEntry("b", key, key, size, "e", mtime)


def test_deal_balances_bytes_across_shards() -> None:
    entries = [_entry(f"{i}.pdf", size) for i, size in enumerate([100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 1])]
    dealt = deal(entries, 4)
    assert sorted(e.key for e in dealt) == sorted(e.key for e in entries)
    load = [sum(e.size for i, e in enumerate(dealt) if shard_of(i, 4) == s) for s in range(4)]
    assert max(load) - min(load) <= 30, load
    assert (dealt[0].size, dealt[4].size, dealt[7].size) == (100, 30, 60), "snake: lap 2 runs backwards"


def test_pending_skips_up_to_date_outputs_and_known_failures() -> None:
    entries = [_entry("a.pdf", 1, mtime=10), _entry("b.pdf", 1, mtime=10), _entry("c.pdf", 1, mtime=10), _entry("d.pdf", 1, mtime=30)]
    index = OutputIndex(markdown={"a.md": 20, "d.md": 20}, failed={"b.md": 20})
    todo, skipped, known = pending(entries, index)
    assert [e.key for e in todo] == ["c.pdf", "d.pdf"] and (skipped, known) == (1, 1)
    todo, _, _ = pending(entries, index, retry_failed=True)
    assert [e.key for e in todo] == ["b.pdf", "c.pdf", "d.pdf"]


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
