"""What a run may cost: the Spot price (never trusted blindly), the pre-flight estimate, the spend."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import InstanceTypeType

log = logging.getLogger(__name__)

DEFAULT_INSTANCE_TYPE = "g4dn.xlarge"
DEFAULT_PRICE_PER_HOUR = 0.526
"""g4dn.xlarge on-demand in us-east-1: the ceiling a Spot price can sensibly reach."""
MIN_SANE_FRACTION = 0.05
"""A Spot price under 5 % of the fallback is a placeholder (moto says 0.00001), not a price."""


@dataclass(frozen=True)
class Price:
    per_hour: float
    source: str


def spot_price(ec2: EC2Client, instance_type: str, fallback_per_hour: float) -> Price:
    """The highest current Spot price across AZs, or the fallback when none is believable."""
    try:
        # The stubs list the instance types of their release as Literals; the API takes any name
        # (new types ship every month), and this one comes from configuration as a plain str.
        history = ec2.describe_spot_price_history(
            InstanceTypes=[cast("InstanceTypeType", instance_type)], ProductDescriptions=["Linux/UNIX"],
            StartTime=datetime.now(UTC) - timedelta(hours=1), MaxResults=100,
        )["SpotPriceHistory"]
    except (ClientError, BotoCoreError) as exc:
        log.warning("Spot price unavailable (%s); using the fallback $%.4f/h", exc, fallback_per_hour)
        return Price(fallback_per_hour, "fallback: spot price history unavailable")
    prices = [float(p["SpotPrice"]) for p in history if p.get("InstanceType") == instance_type]
    if not prices:
        return Price(fallback_per_hour, "fallback: no spot price history")
    best = max(prices)
    if not MIN_SANE_FRACTION * fallback_per_hour <= best <= fallback_per_hour * 3:
        log.warning("ignoring implausible Spot price $%g/h for %s", best, instance_type)
        return Price(fallback_per_hour, f"fallback: implausible spot price ${best:g}/h")
    return Price(best, f"spot price history ({instance_type})")


@dataclass(frozen=True)
class Estimate:
    pages: int
    seconds_per_page: float
    concurrency: int
    price: Price
    instance_hours: float
    cost_usd: float

    def describe(self) -> str:
        return (f"{self.pages} pages × {self.seconds_per_page:g} s/page ÷ {self.concurrency} pages in parallel per "
                f"instance = {self.instance_hours:.3f} instance-hours × ${self.price.per_hour:.4f}/h "
                f"({self.price.source}) = ${self.cost_usd:.4f}")


def estimate(pages: int, seconds_per_page: float, concurrency: int, price: Price) -> Estimate:
    """Instance time is the work divided by how many pages one instance converts at once."""
    hours = pages * seconds_per_page / max(concurrency, 1) / 3600
    return Estimate(pages, seconds_per_page, max(concurrency, 1), price, hours, hours * price.per_hour)


def estimate_pages(total_bytes: int, entries: int, bytes_per_page: int) -> int:
    """Pages are unknown until a PDF is opened: estimate from size, at least one page per PDF."""
    return max(entries, -(-total_bytes // max(bytes_per_page, 1)))


def spend(instance_seconds: float, price: Price) -> float:
    return instance_seconds / 3600 * price.per_hour
