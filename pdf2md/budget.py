"""What a run may cost: the Spot price (never trusted blindly), the pre-flight estimate, the spend."""

from __future__ import annotations

import logging
from collections.abc import Sequence
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


S3_PUT_USD = 0.005 / 1000
"""S3 Standard's price of a PUT (us-east-1): what each output beyond the Markdown adds per PDF."""
FIGURES_PER_PAGE = 0.5
"""The estimate's assumption for `figures` (the real count is known only once pages are read): one figure
every second page, each one PUT."""


@dataclass(frozen=True)
class Estimate:
    pages: int
    seconds_per_page: float
    concurrency: int
    price: Price
    instance_hours: float
    cost_usd: float
    extra_puts: int = 0
    """PUTs the chosen outputs add beyond the default run's one per PDF (their cost is in cost_usd)."""

    def describe(self) -> str:
        extra = (f" + {self.extra_puts} PUTs for the outputs beyond the Markdown × ${S3_PUT_USD * 1000:g}/1000"
                 if self.extra_puts else "")
        return (f"{self.pages} pages × {self.seconds_per_page:g} s/page ÷ {self.concurrency} pages in parallel per "
                f"instance = {self.instance_hours:.3f} instance-hours × ${self.price.per_hour:.4f}/h "
                f"({self.price.source}){extra} = ${self.cost_usd:.4f}")


def estimate(pages: int, seconds_per_page: float, concurrency: int, price: Price, *, pdfs: int = 0,
             outputs: Sequence[str] = ()) -> Estimate:
    """Instance time is the work divided by how many pages one instance converts at once; the outputs beyond
    the Markdown add their PUTs (extra_puts)."""
    hours = pages * seconds_per_page / max(concurrency, 1) / 3600
    puts = extra_puts(pdfs, pages, outputs)
    return Estimate(pages, seconds_per_page, max(concurrency, 1), price, hours, hours * price.per_hour + puts * S3_PUT_USD, puts)


def extra_puts(pdfs: int, pages: int, outputs: Sequence[str]) -> int:
    """One PUT per PDF for the JSON, one per figure (FIGURES_PER_PAGE assumed); page anchors cost none."""
    return (pdfs if "json" in outputs else 0) + (round(pages * FIGURES_PER_PAGE) if "figures" in outputs else 0)


def estimate_pages(total_bytes: int, entries: int, bytes_per_page: int) -> int:
    """Pages are unknown until a PDF is opened: estimate from size, at least one page per PDF."""
    return max(entries, -(-total_bytes // max(bytes_per_page, 1)))


def spend(instance_seconds: float, price: Price) -> float:
    return instance_seconds / 3600 * price.per_hour
