"""The simulated fleet: distributors, utilities by segment, and the C&I meters they own.

Pure and deterministic: meter `i` of seed `s` is the same whatever the fleet size, so a
bigger demo fleet keeps the meters a smaller one had, and the database seed and the
simulator agree on every meter without talking to each other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

Segment = Literal["iou", "service_bureau", "security"]
SEGMENTS: Final[tuple[Segment, ...]] = ("iou", "service_bureau", "security")
SEGMENT_LABELS: Final[dict[Segment, str]] = {
    "iou": "Investor-owned utility",
    "service_bureau": "Municipal / co-op service bureau",
    "security": "Security (federal & municipal buildings)",
}
Network = Literal["lte", "3g", "2g", "private_nb"]
Schedule = Literal["live", "hourly", "daily"]
SCHEDULES: Final[tuple[Schedule, ...]] = ("live", "hourly", "daily")


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
    # Share of the design peak that is cooling and electric heating (the rest is occupancy).
    cooling: float = 0.3
    heating: float = 0.05
    # Uncorrected displacement power factor: motor loads (plants, refrigeration, warehouse
    # conveyors) run lower, electronics behind corrected supplies (data centres) higher.
    power_factor: tuple[float, float] = (0.88, 0.98)


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
    shifts: int = 0
    vendor: str = ""
    model: str = ""
    form_factor: str = ""
    service: str = ""
    schedule: Schedule = "live"

    @property
    def phases(self) -> int:
        """Return how many phase voltages the meter reports (a 12S network meter: 2)."""
        return 2 if self.form_factor == "12S" else 3


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """A radio network an endpoint can call in over, with its sunset and delivery figures."""

    code: Network
    label: str
    public: bool
    # How long after the simulation starts the carrier switches the network off: fixed
    # calendar dates aged into the demo (a 2G date a few weeks out took that cohort offline
    # on every run after it), so every run, on any date, tells the same story.
    sunset_after: timedelta | None
    success_rate: float
    latency_s: tuple[float, float]


@dataclass(frozen=True, slots=True)
class MeterModel:
    """A vendor's C&I meter with a wireless module (generic names)."""

    vendor: str
    model: str
    form_factors: tuple[str, ...]


DISTRIBUTORS: Final = (
    Distributor("northgrid", "NorthGrid Supply", "US Midwest & Northeast"),
    Distributor("prairiemeter", "Prairie Meter & Supply", "US Plains & West"),
)

# Design peak kW and load factor per type, inside DOMAIN.md's survey figures (small office
# 20-30 kW at 40-60 %, large office 1.5-2.5 MW, hospital ~1 MW at 70-90 % ~ 7.7 GWh/yr, ...)
# with room for weather and noise to push the measured annual peak a few percent higher.
# 120 V per phase is a 120/208 V service, 277 V a 277/480 V one.
BUILDING_TYPES: Final = {
    b.code: b
    for b in (
        BuildingType(
            "small_office", "Small office", "Office", (22.5, 27), (0.42, 0.55), 120, 0.35, 0.08
        ),
        BuildingType(
            "large_office", "Large office", "Tower", (1700, 2300), (0.42, 0.55), 277, 0.35, 0.05
        ),
        BuildingType("retail", "Retail", "Plaza", (60, 230), (0.42, 0.55), 120, 0.30, 0.06),
        BuildingType(
            "supermarket",
            "Supermarket",
            "Market",
            (250, 460),
            (0.65, 0.78),
            277,
            0.15,
            0.03,
            (0.85, 0.97),
        ),
        BuildingType(
            "hospital", "Hospital", "Medical Center", (990, 1050), (0.82, 0.86), 277, 0.25, 0.04
        ),
        BuildingType("school", "School", "High School", (150, 370), (0.28, 0.40), 277, 0.35, 0.08),
        BuildingType(
            "warehouse",
            "Warehouse",
            "Distribution Center",
            (80, 280),
            (0.36, 0.50),
            277,
            0.20,
            0.08,
            (0.86, 0.98),
        ),
        # Load factor here is for two shifts; make_meter picks 1-3 shifts and its own range.
        BuildingType(
            "manufacturing",
            "Manufacturing plant",
            "Works",
            (500, 2800),
            (0.50, 0.62),
            277,
            0.10,
            0.03,
            (0.82, 0.96),
        ),
        BuildingType(
            "data_center",
            "Data center",
            "Data Center",
            (800, 1850),
            (0.84, 0.92),
            277,
            0.12,
            0.0,
            (0.94, 0.99),
        ),
        BuildingType(
            "federal_office",
            "Federal office building",
            "Federal Building",
            (400, 1100),
            (0.42, 0.55),
            277,
            0.35,
            0.05,
        ),
    )
}
# Manufacturing load factor by number of shifts: one shift is peaky, three run continuously.
SHIFT_LOAD_FACTOR: Final = {1: (0.34, 0.44), 2: (0.50, 0.62), 3: (0.74, 0.84)}
_SHIFT_WEIGHTS: Final = ((1, 0.30), (2, 0.45), (3, 0.25))

# Fictional carriers with announced sunsets (2G and 3G shutdowns stranded real meter fleets),
# far past a demo's story (at 900x the 2G one comes after 9.7 hours; the demo scripts its
# own 3G shutdown as an incident); the
# distributor's private narrowband network has no sunset. Delivery success is per call,
# before the signal-strength penalty; latency is from the end of a call to the broker.
NETWORKS: Final = {
    n.code: n
    for n in (
        NetworkSpec(
            "lte", "Public cellular LTE Cat-M1", True, timedelta(days=8 * 365), 0.995, (0.3, 2.0)
        ),
        NetworkSpec(
            "3g", "Public cellular 3G (UMTS)", True, timedelta(days=2 * 365), 0.98, (1.0, 6.0)
        ),
        NetworkSpec(
            "2g", "Public cellular 2G (GPRS)", True, timedelta(days=365), 0.95, (3.0, 15.0)
        ),
        NetworkSpec("private_nb", "Distributor private narrowband", False, None, 0.99, (5.0, 40.0)),
    )
}
# Below this a module reports low signal and its calls fail more often.
LOW_SIGNAL_DBM: Final = -105.0
METER_MODELS: Final = (
    MeterModel("Meridian", "M-400 C&I", ("9S", "16S")),
    MeterModel("Apex Metering", "AX-2 Polyphase", ("9S", "16S", "12S")),
    MeterModel("Northstar", "NS-Commercial 5", ("9S", "45S")),
)
# Call-in schedule mix by network: slow or costly links call in less often.
_SCHEDULE_WEIGHTS: Final[dict[Network, tuple[float, float, float]]] = {
    "lte": (0.6, 0.3, 0.1),
    "3g": (0.2, 0.5, 0.3),
    "2g": (0.0, 0.4, 0.6),
    "private_nb": (0.0, 0.3, 0.7),
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
    ("lte", 0.66),
    ("3g", 0.12),
    ("2g", 0.04),
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
    site_name = f"{rng.choice(_PLACES)} {btype.noun} {index:03d}"
    peak_kw = round(rng.uniform(*btype.peak_kw), 1)
    load_factor = round(rng.uniform(*btype.load_factor), 3)
    # About a quarter of sites sit below 0.90, so power-factor penalties and the low-PF
    # alarm show up without half the fleet in alarm (0.80-0.99 for every type put 52 % there).
    # This is the PF at the site's mean load; light hours read lower (model.REACTIVE_FIXED).
    power_factor = round(rng.uniform(*btype.power_factor), 3)
    signal_dbm = round(rng.uniform(-110, -65), 1)
    lat = round(utility.lat + rng.uniform(-0.35, 0.35), 5)
    lon = round(utility.lon + rng.uniform(-0.45, 0.45), 5)
    # Draws added later come last, so the attributes above stay what earlier fleets had.
    shifts = 0
    if btype.code == "manufacturing":
        shifts = rng.choices([s for s, _ in _SHIFT_WEIGHTS], [w for _, w in _SHIFT_WEIGHTS])[0]
        load_factor = round(rng.uniform(*SHIFT_LOAD_FACTOR[shifts]), 3)
    meter_model = rng.choice(METER_MODELS)
    # Small services are self-contained (16S/12S); large ones transformer-rated (9S/45S).
    small = peak_kw < 150
    forms = [f for f in meter_model.form_factors if (f in ("16S", "12S")) == small]
    form_factor = rng.choice(forms or list(meter_model.form_factors))
    if form_factor == "12S" and btype.phase_volts != 120:
        # A 12S is a two-element meter for a 120/208 V network service, never on 277/480 V.
        # Remapped after the draw, so the draws after it stay what earlier fleets had.
        form_factor = "16S"
    schedule = rng.choices(SCHEDULES, _SCHEDULE_WEIGHTS[network])[0]
    return Meter(
        id=f"{utility.id}-{index:05d}",
        index=index,
        utility_id=utility.id,
        site_name=site_name,
        building_type=btype.code,
        peak_kw=peak_kw,
        load_factor=load_factor,
        power_factor=power_factor,
        phase_volts=btype.phase_volts,
        network=network,
        signal_dbm=signal_dbm,
        lat=lat,
        lon=lon,
        shifts=shifts,
        vendor=meter_model.vendor,
        model=meter_model.model,
        form_factor=form_factor,
        service="120/208" if btype.phase_volts == 120 else "277/480",
        schedule=schedule,
    )


def build_fleet(meters: int, seed: int) -> list[Meter]:
    """Build the first `meters` meters of the fleet for `seed`."""
    if meters < 0:
        raise ValueError("meters must be >= 0")
    return [make_meter(i, seed) for i in range(meters)]
