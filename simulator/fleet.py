"""The simulated fleet: distributors, utilities by segment, and the C&I meters they own.

Pure and deterministic: meter `i` of seed `s` is the same whatever the fleet size, so a
bigger demo fleet keeps the meters a smaller one had, and the database seed and the
simulator agree on every meter without talking to each other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final, Literal

Segment = Literal["iou", "service_bureau", "security"]
SEGMENTS: Final[tuple[Segment, ...]] = ("iou", "service_bureau", "security")
SEGMENT_LABELS: Final[dict[Segment, str]] = {
    "iou": "Investor-owned utility",
    "service_bureau": "Municipal / co-op service bureau",
    "security": "Security (federal & municipal buildings)",
}
Network = Literal["lte", "3g", "private_nb"]


@dataclass(frozen=True, slots=True)
class Distributor:
    """A channel partner that sells to a set of utilities."""

    id: str
    name: str
    territory: str


@dataclass(frozen=True, slots=True)
class Utility:
    """A customer organisation: a utility, or for the security segment a building owner."""

    id: str
    name: str
    segment: Segment
    distributor_id: str
    region: str
    lat: float
    lon: float
    c_and_i_customers: int
    modem_lines: int
    building_types: tuple[str, ...]
    weight: int


@dataclass(frozen=True, slots=True)
class BuildingType:
    """A kind of C&I site with survey-based size and load-factor ranges."""

    code: str
    label: str
    noun: str
    peak_kw: tuple[float, float]
    load_factor: tuple[float, float]
    phase_volts: float


@dataclass(frozen=True, slots=True)
class Meter:
    """One metered C&I site with a wireless endpoint."""

    id: str
    index: int
    utility_id: str
    site_name: str
    building_type: str
    peak_kw: float
    load_factor: float
    power_factor: float
    phase_volts: float
    network: Network
    signal_dbm: float
    lat: float
    lon: float


DISTRIBUTORS: Final = (
    Distributor("northgrid", "NorthGrid Supply", "US Midwest & Northeast"),
    Distributor("prairiemeter", "Prairie Meter & Supply", "US Plains & West"),
)

# Peak kW and load factor follow DOMAIN.md's survey figures (small office 20-30 kW at
# 40-60 %, hospital ~1 MW at 70-90 %, ...); 120 V or 277 V per phase is the usual service.
BUILDING_TYPES: Final = {
    b.code: b
    for b in (
        BuildingType("small_office", "Small office", "Office", (20, 30), (0.40, 0.60), 120),
        BuildingType("large_office", "Large office", "Tower", (1500, 2500), (0.40, 0.60), 277),
        BuildingType("retail", "Retail", "Plaza", (60, 250), (0.45, 0.60), 120),
        BuildingType("supermarket", "Supermarket", "Market", (250, 500), (0.65, 0.80), 277),
        BuildingType("hospital", "Hospital", "Medical Center", (950, 1150), (0.72, 0.88), 277),
        BuildingType("school", "School", "High School", (150, 400), (0.30, 0.45), 277),
        BuildingType("warehouse", "Warehouse", "Distribution Center", (80, 300), (0.35, 0.55), 277),
        BuildingType(
            "manufacturing", "Manufacturing plant", "Works", (500, 3000), (0.50, 0.85), 277
        ),
        BuildingType("data_center", "Data center", "Data Center", (800, 2000), (0.80, 0.95), 277),
        BuildingType(
            "federal_office",
            "Federal office building",
            "Federal Building",
            (400, 1200),
            (0.45, 0.65),
            277,
        ),
    )
}

UTILITIES: Final = (
    Utility(
        "glpl",
        "Great Lakes Power & Light",
        "iou",
        "northgrid",
        "Midwest",
        42.33,
        -83.05,
        18_400,
        6_200,
        (
            "small_office",
            "large_office",
            "retail",
            "supermarket",
            "hospital",
            "school",
            "warehouse",
            "manufacturing",
            "data_center",
        ),
        5,
    ),
    Utility(
        "atlantic",
        "Atlantic Coast Electric",
        "iou",
        "northgrid",
        "Northeast",
        39.95,
        -75.17,
        25_100,
        8_900,
        (
            "small_office",
            "large_office",
            "retail",
            "supermarket",
            "hospital",
            "school",
            "warehouse",
            "data_center",
        ),
        4,
    ),
    Utility(
        "cascade",
        "Cascade Energy",
        "iou",
        "prairiemeter",
        "Pacific Northwest",
        45.52,
        -122.68,
        14_200,
        4_100,
        (
            "small_office",
            "large_office",
            "retail",
            "supermarket",
            "hospital",
            "warehouse",
            "manufacturing",
        ),
        3,
    ),
    Utility(
        "millbrook",
        "Millbrook Municipal Light",
        "service_bureau",
        "northgrid",
        "New England",
        42.90,
        -72.28,
        640,
        85,
        ("small_office", "retail", "supermarket", "school", "warehouse", "manufacturing"),
        2,
    ),
    Utility(
        "prec",
        "Prairie Rural Electric Co-op",
        "service_bureau",
        "prairiemeter",
        "Great Plains",
        41.13,
        -100.77,
        410,
        60,
        ("small_office", "retail", "school", "warehouse", "manufacturing"),
        2,
    ),
    Utility(
        "fedcenter",
        "Federal Center Campus",
        "security",
        "northgrid",
        "Mid-Atlantic",
        38.89,
        -77.02,
        0,
        24,
        ("federal_office", "large_office", "data_center"),
        2,
    ),
    Utility(
        "riverton",
        "City of Riverton Buildings",
        "security",
        "prairiemeter",
        "Mountain West",
        39.74,
        -104.99,
        0,
        12,
        ("federal_office", "small_office", "school"),
        2,
    ),
)
UTILITY_BY_ID: Final = {u.id: u for u in UTILITIES}

# Meter i goes to the utility at position i of this cycle: proportional to weight and
# prefix-stable, and any fleet of 7+ meters reaches every utility.
_CYCLE: Final = tuple(
    u.id
    for round_ in range(max(u.weight for u in UTILITIES))
    for u in UTILITIES
    if round_ < u.weight
)

_PLACES: Final = (
    "Lakeside",
    "Riverside",
    "Oak Street",
    "Harbor",
    "Summit",
    "Maple",
    "Union",
    "Granite",
    "Meadow",
    "Pioneer",
    "Liberty",
    "Cedar",
    "Northgate",
    "Elm Park",
    "Bayview",
    "Franklin",
)
_NETWORKS: Final[tuple[tuple[Network, float], ...]] = (
    ("lte", 0.70),
    ("3g", 0.12),
    ("private_nb", 0.18),
)


def make_meter(index: int, seed: int) -> Meter:
    """Build meter `index` of the fleet for `seed`."""
    rng = random.Random(f"wattline-meter:{seed}:{index}")
    utility = UTILITY_BY_ID[_CYCLE[index % len(_CYCLE)]]
    btype = BUILDING_TYPES[rng.choice(utility.building_types)]
    network = rng.choices([n for n, _ in _NETWORKS], weights=[w for _, w in _NETWORKS])[0]
    # Rural co-op sites sit on the distributor's private network far more often.
    if utility.id == "prec" and rng.random() < 0.6:
        network = "private_nb"
    return Meter(
        id=f"{utility.id}-{index:05d}",
        index=index,
        utility_id=utility.id,
        site_name=f"{rng.choice(_PLACES)} {btype.noun} {index:03d}",
        building_type=btype.code,
        peak_kw=round(rng.uniform(*btype.peak_kw), 1),
        load_factor=round(rng.uniform(*btype.load_factor), 3),
        # About a third of sites sit below 0.90 so power-factor penalties show up.
        power_factor=round(rng.uniform(0.80, 0.99), 3),
        phase_volts=btype.phase_volts,
        network=network,
        signal_dbm=round(rng.uniform(-110, -65), 1),
        lat=round(utility.lat + rng.uniform(-0.35, 0.35), 5),
        lon=round(utility.lon + rng.uniform(-0.45, 0.45), 5),
    )


def build_fleet(meters: int, seed: int) -> list[Meter]:
    """Build the first `meters` meters of the fleet for `seed`."""
    if meters < 0:
        raise ValueError("meters must be >= 0")
    return [make_meter(i, seed) for i in range(meters)]
