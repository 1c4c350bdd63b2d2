"""Price book and channel margins: list prices, tier discounts, promotions, deal economics.

Prices depend on the partner's *tier* only: no function here takes a partner, so two
partners of one tier cannot be quoted differently (no hidden partner-only deals).
The customer pays list price; the partner buys at list less its tier discount and any
promotion for its tier; the difference is the distributor's margin, what the vendor is
paid is the vendor's net.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

Kind = Literal["endpoint", "subscription"]


class PricingError(ValueError):
    """Reject a bad quote request; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class PriceItem:
    """One line of the price book."""

    sku: str
    label: str
    kind: Kind
    list_price: float
    unit: str


@dataclass(frozen=True, slots=True)
class Promotion:
    """A time-limited extra discount for every partner of a tier on one SKU."""

    code: str
    tier: str
    sku: str
    extra_discount: float
    starts: date
    ends: date
    label: str

    def active(self, on: date) -> bool:
        """Return True if the promotion applies on a date (both ends inclusive)."""
        return self.starts <= on <= self.ends


@dataclass(frozen=True, slots=True)
class PriceBook:
    """List prices, tier discounts and promotions."""

    items: tuple[PriceItem, ...]
    tier_discounts: dict[str, float]
    promotions: tuple[Promotion, ...] = ()

    def item(self, sku: str) -> PriceItem:
        """Return one item by SKU."""
        for it in self.items:
            if it.sku == sku:
                return it
        raise PricingError("sku", f"unknown SKU {sku!r}")

    def promotions_for(self, tier: str, on: date) -> list[Promotion]:
        """Return the promotions every partner of `tier` gets on a date."""
        return [p for p in self.promotions if p.tier == tier and p.active(on)]


# Cellular C&I endpoints installed cost "low thousands per site" (DOMAIN.md); the
# subscription covers the data plan (~$1-2/SIM) plus hosting and support.
DEFAULT_BOOK: Final = PriceBook(
    items=(
        PriceItem("EP-LTE", "LTE-M C&I endpoint, installed", "endpoint", 1450.0, "per endpoint"),
        PriceItem(
            "EP-PNB", "Private narrowband endpoint, installed", "endpoint", 1250.0, "per endpoint"
        ),
        PriceItem("SUB-STD", "Telemetry subscription", "subscription", 9.0, "per endpoint-month"),
        PriceItem("SUB-SB", "Service-bureau hosting", "subscription", 14.0, "per endpoint-month"),
    ),
    tier_discounts={"gold": 0.30, "silver": 0.24, "bronze": 0.18},
    promotions=(
        Promotion(
            "Q1-LTE",
            "silver",
            "EP-LTE",
            0.05,
            date(2026, 1, 1),
            date(2027, 3, 31),
            "3G sunset replacement push",
        ),
        Promotion(
            "SB-LAUNCH",
            "gold",
            "SUB-SB",
            0.04,
            date(2026, 6, 1),
            date(2027, 6, 30),
            "Service-bureau launch",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class TierPrice:
    """What a partner of one tier pays for one SKU on a date."""

    item: PriceItem
    tier: str
    discount: float
    promotion: Promotion | None
    partner_price: float

    @property
    def margin(self) -> float:
        """Return the distributor's margin per unit at list price."""
        return self.item.list_price - self.partner_price


def tier_price(book: PriceBook, tier: str, sku: str, on: date) -> TierPrice:
    """Price one SKU for a tier on a date."""
    if tier not in book.tier_discounts:
        raise PricingError("tier", f"must be one of {', '.join(book.tier_discounts)}")
    item = book.item(sku)
    promos = [p for p in book.promotions_for(tier, on) if p.sku == sku]
    promo = max(promos, key=lambda p: p.extra_discount, default=None)
    discount = book.tier_discounts[tier] + (promo.extra_discount if promo else 0.0)
    return TierPrice(item, tier, discount, promo, round(item.list_price * (1 - discount), 2))


def price_sheet(book: PriceBook, tier: str, on: date) -> list[TierPrice]:
    """Return the whole price book as a tier sees it on a date."""
    return [tier_price(book, tier, it.sku, on) for it in book.items]


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """One priced line of a deal."""

    sku: str
    label: str
    quantity: float
    list_total: float
    partner_total: float

    @property
    def margin(self) -> float:
        """Return the distributor's margin on this line."""
        return self.list_total - self.partner_total


@dataclass(frozen=True, slots=True)
class Quote:
    """Deal economics: what the customer pays, the distributor keeps and the vendor nets."""

    tier: str
    lines: tuple[QuoteLine, ...]

    @property
    def customer_total(self) -> float:
        """Return the customer's total at list price."""
        return round(sum(line.list_total for line in self.lines), 2)

    @property
    def vendor_net(self) -> float:
        """Return what the vendor is paid."""
        return round(sum(line.partner_total for line in self.lines), 2)

    @property
    def distributor_margin(self) -> float:
        """Return what the distributor keeps."""
        return round(self.customer_total - self.vendor_net, 2)


def deal_quote(
    book: PriceBook,
    tier: str,
    *,
    endpoints: int,
    term_months: int,
    on: date,
    endpoint_sku: str = "EP-LTE",
    subscription_sku: str = "SUB-STD",
) -> Quote:
    """Price a deal of `endpoints` endpoints with a `term_months` subscription."""
    if isinstance(endpoints, bool) or not isinstance(endpoints, int) or endpoints < 0:
        raise PricingError("endpoints", "must be a whole number >= 0")
    if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months < 0:
        raise PricingError("term_months", "must be a whole number >= 0")
    lines: list[QuoteLine] = []
    for sku, qty in ((endpoint_sku, endpoints), (subscription_sku, endpoints * term_months)):
        price = tier_price(book, tier, sku, on)
        lines.append(
            QuoteLine(
                sku,
                price.item.label,
                float(qty),
                round(price.item.list_price * qty, 2),
                round(price.partner_price * qty, 2),
            )
        )
    return Quote(tier, tuple(lines))


def subscription_sku_for(segment: str) -> str:
    """Return the subscription a segment buys (service-bureau customers are hosted)."""
    return "SUB-SB" if segment == "service_bureau" else "SUB-STD"


def tiers(book: PriceBook) -> Sequence[str]:
    """Return the tiers of a price book, best first."""
    return sorted(book.tier_discounts, key=lambda t: -book.tier_discounts[t])
