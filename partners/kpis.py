"""Partnership KPIs both sides can trust: pipeline, win rate, sales cycle, value to each side."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from partners.deals import OPEN, PIPELINE_ORDER, Status

# Utility sales take 6-9 months (DOMAIN.md); a cycle is measured from registration to win.
NORM_MONTHS: Final = (6.0, 9.0)
DAYS_PER_MONTH: Final = 365.25 / 12


@dataclass(frozen=True, slots=True)
class DealFacts:
    """The figures of one deal that KPIs are computed from."""

    id: int
    distributor_id: str
    segment: str
    status: Status
    created_at: datetime
    endpoints: int = 0
    customer_total: float = 0.0
    vendor_net: float = 0.0
    distributor_margin: float = 0.0
    first_response_at: datetime | None = None
    closed_at: datetime | None = None
    roi_deliveries: int = 0


@dataclass(frozen=True, slots=True)
class Kpis:
    """KPIs over a set of deals."""

    deals: int
    pipeline: dict[str, dict[str, int]]
    pipeline_value: dict[str, float]
    won: int
    lost: int
    win_rate: float | None
    cycle_months: list[float]
    median_cycle_months: float | None
    within_norm: int
    longer_than_norm: int
    roi_reports_delivered: int
    meters_deployed: int
    vendor_revenue: float
    distributor_revenue: float
    open_pipeline_value: float
    median_response_hours: float | None
    segments: list[str] = field(default_factory=list)

    def rows(self, *, for_people: bool = False) -> list[tuple[str, str]]:
        """Return the headline figures as (label, value) text pairs for the CSV (plain
        numbers) or, `for_people`, for the page (thousands separated, whole dollars)."""

        def opt(v: float | None, fmt: str) -> str:
            return "n/a" if v is None else format(v, fmt)

        def count(n: int) -> str:
            return f"{n:,}" if for_people else str(n)

        def usd(v: float) -> str:
            return f"${v:,.0f}" if for_people else f"{v:.2f}"

        return [
            ("Deals", count(self.deals)),
            ("Won", count(self.won)),
            ("Lost", count(self.lost)),
            ("Win rate", opt(None if self.win_rate is None else 100 * self.win_rate, ".0f") + " %"),
            ("Median sales cycle (months)", opt(self.median_cycle_months, ".1f")),
            ("Won within the 6-9 month norm", count(self.within_norm)),
            ("Won after more than 9 months", count(self.longer_than_norm)),
            ("ROI reports delivered", count(self.roi_reports_delivered)),
            ("Meters deployed", count(self.meters_deployed)),
            ("Vendor revenue (USD)", usd(self.vendor_revenue)),
            ("Distributor revenue (USD)", usd(self.distributor_revenue)),
            ("Open pipeline value (USD)", usd(self.open_pipeline_value)),
            ("Median lead to first response (hours)", opt(self.median_response_hours, ".1f")),
        ]


def compute(deals: Iterable[DealFacts]) -> Kpis:
    """Compute the KPIs of a set of deals (the caller scopes them to a side or partner)."""
    rows = list(deals)
    segments = sorted({d.segment for d in rows})
    pipeline = {s.value: dict.fromkeys(segments, 0) for s in PIPELINE_ORDER}
    value = {s.value: 0.0 for s in PIPELINE_ORDER}
    for d in rows:
        if d.status in pipeline_statuses():
            pipeline[d.status.value][d.segment] += 1
            value[d.status.value] += d.customer_total
    won = [d for d in rows if d.status == Status.WON]
    lost = [d for d in rows if d.status == Status.LOST]
    cycles = sorted(
        (d.closed_at - d.created_at).total_seconds() / 86400 / DAYS_PER_MONTH
        for d in won
        if d.closed_at is not None
    )
    responses = [
        (d.first_response_at - d.created_at).total_seconds() / 3600
        for d in rows
        if d.first_response_at is not None
    ]
    return Kpis(
        deals=len(rows),
        pipeline=pipeline,
        pipeline_value={k: round(v, 2) for k, v in value.items()},
        won=len(won),
        lost=len(lost),
        win_rate=len(won) / (len(won) + len(lost)) if won or lost else None,
        cycle_months=[round(c, 2) for c in cycles],
        median_cycle_months=_median(cycles),
        within_norm=sum(1 for c in cycles if NORM_MONTHS[0] <= c <= NORM_MONTHS[1]),
        longer_than_norm=sum(1 for c in cycles if c > NORM_MONTHS[1]),
        roi_reports_delivered=sum(d.roi_deliveries for d in rows),
        meters_deployed=sum(d.endpoints for d in won),
        vendor_revenue=round(sum(d.vendor_net for d in won), 2),
        distributor_revenue=round(sum(d.distributor_margin for d in won), 2),
        open_pipeline_value=round(sum(d.customer_total for d in rows if d.status in OPEN), 2),
        median_response_hours=_median(responses),
        segments=segments,
    )


def pipeline_statuses() -> frozenset[Status]:
    """Return the statuses shown in the pipeline (rejected registrations are not pipeline)."""
    return frozenset(PIPELINE_ORDER)


def by_partner(deals: Sequence[DealFacts]) -> dict[str, Kpis]:
    """Compute KPIs per distributor (the vendor's view across partners)."""
    ids = sorted({d.distributor_id for d in deals})
    return {i: compute(d for d in deals if d.distributor_id == i) for i in ids}


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None
