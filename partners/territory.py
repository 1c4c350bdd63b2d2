"""Territory rules: North America first, and each partner sells only inside its territory.

Places are ISO 3166-2 style codes: a country (``US``) or a subdivision (``US-MI``,
``CA-ON``). A territory is a set of such codes; a country code covers all its
subdivisions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

# The go-to-market starts in North America; anything else is refused until that changes.
LAUNCH_COUNTRIES: Final = frozenset({"US", "CA", "MX"})
_CODE = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")


class TerritoryError(ValueError):
    """Reject a malformed place or territory code; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse_place(raw: object, field: str = "region") -> str:
    """Normalise a place code like ``us-mi`` to ``US-MI``; refuse anything else."""
    if not isinstance(raw, str):
        raise TerritoryError(field, "must be a string such as 'US-MI' or 'CA-ON'")
    code = raw.strip().upper()
    if not _CODE.fullmatch(code):
        raise TerritoryError(field, f"must be a code such as 'US-MI' or 'CA-ON', got {raw!r}")
    return code


def parse_territory(codes: Iterable[object], field: str = "territory") -> frozenset[str]:
    """Normalise a list of place codes into a territory."""
    return frozenset(parse_place(c, f"{field}[{i}]") for i, c in enumerate(codes))


@dataclass(frozen=True, slots=True)
class TerritoryDecision:
    """Whether a partner may register a deal at a place, and why not."""

    allowed: bool
    reason: str


def covers(territory: Iterable[str], place: str) -> bool:
    """Return True if a territory includes a place (a country covers its subdivisions)."""
    country = place.split("-", 1)[0]
    codes = set(territory)
    return place in codes or country in codes


def check_deal_territory(
    partner_name: str, territory: Iterable[str], place: str
) -> TerritoryDecision:
    """Decide whether a partner may register a deal for a customer at `place`."""
    country = place.split("-", 1)[0]
    if country not in LAUNCH_COUNTRIES:
        return TerritoryDecision(
            False,
            f"{place} is outside North America: the channel program covers "
            f"{', '.join(sorted(LAUNCH_COUNTRIES))} first",
        )
    codes = sorted(territory)
    if not covers(codes, place):
        listed = ", ".join(codes) if codes else "none"
        return TerritoryDecision(False, f"{place} is outside {partner_name}'s territory ({listed})")
    return TerritoryDecision(True, f"{place} is inside {partner_name}'s territory")
