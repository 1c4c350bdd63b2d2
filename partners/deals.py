"""Deal registration: lifecycle state machine and conflict detection (pure rules).

Lifecycle: submitted -> approved -> roi_requested -> proposal -> won | lost. The vendor
approves or rejects a submitted registration; the distributor requests the ROI and
moves the deal to proposal once the vendor has delivered it; either side records the
outcome. Any open deal can be lost.

Conflicts: two open registrations for the same utility (by two partners, or two reps of
one partner) conflict. The earliest one still inside its protection window is
*protected*; the others are *flagged* for the vendor to decide, and the vendor cannot
approve a flagged deal while the protected one still holds the utility. The same utility
means the same name (spelling, script and legal-form variants folded by `utility_key`) in
the same region; an investor-owned utility serves several states, so two IOU
registrations of one name are one customer wherever they were registered. A partner
cannot register a utility again while its own registration of it is open or won: that
would restart its protection window.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from anyascii import anyascii

Side = Literal["vendor", "distributor"]
PROTECTION_WINDOW: Final = timedelta(days=90)


class Status(StrEnum):
    """Deal lifecycle states."""

    SUBMITTED = "submitted"
    APPROVED = "approved"
    ROI_REQUESTED = "roi_requested"
    PROPOSAL = "proposal"
    WON = "won"
    LOST = "lost"
    REJECTED = "rejected"


STATUS_LABELS: Final[dict[Status, str]] = {
    Status.SUBMITTED: "Submitted",
    Status.APPROVED: "Approved",
    Status.ROI_REQUESTED: "ROI requested",
    Status.PROPOSAL: "Proposal",
    Status.WON: "Won",
    Status.LOST: "Lost",
    Status.REJECTED: "Rejected",
}
OPEN: Final = frozenset({Status.SUBMITTED, Status.APPROVED, Status.ROI_REQUESTED, Status.PROPOSAL})
CLOSED: Final = frozenset({Status.WON, Status.LOST, Status.REJECTED})
PIPELINE_ORDER: Final = (
    Status.SUBMITTED,
    Status.APPROVED,
    Status.ROI_REQUESTED,
    Status.PROPOSAL,
    Status.WON,
    Status.LOST,
)

# (from, to) -> sides allowed to make that move.
TRANSITIONS: Final[dict[tuple[Status, Status], frozenset[Side]]] = {
    (Status.SUBMITTED, Status.APPROVED): frozenset({"vendor"}),
    (Status.SUBMITTED, Status.REJECTED): frozenset({"vendor"}),
    (Status.APPROVED, Status.ROI_REQUESTED): frozenset({"distributor", "vendor"}),
    (Status.APPROVED, Status.PROPOSAL): frozenset({"distributor", "vendor"}),
    (Status.ROI_REQUESTED, Status.PROPOSAL): frozenset({"distributor", "vendor"}),
    (Status.PROPOSAL, Status.WON): frozenset({"distributor", "vendor"}),
    (Status.PROPOSAL, Status.LOST): frozenset({"distributor", "vendor"}),
    (Status.APPROVED, Status.LOST): frozenset({"distributor", "vendor"}),
    (Status.ROI_REQUESTED, Status.LOST): frozenset({"distributor", "vendor"}),
    # A partner withdrawing its own pending registration releases the utility.
    (Status.SUBMITTED, Status.LOST): frozenset({"distributor", "vendor"}),
}


class WorkflowError(ValueError):
    """Refuse a move the lifecycle does not allow, with the reason."""


def parse_status(raw: object, field: str = "status") -> Status:
    """Parse a status name, naming the field when it is not one."""
    try:
        return Status(str(raw)) if isinstance(raw, str) else Status("")
    except ValueError:
        names = ", ".join(s.value for s in Status)
        raise WorkflowError(f"{field}: must be one of {names}; got {raw!r}") from None


def next_states(current: Status, side: Side) -> list[Status]:
    """List the states `side` may move a deal to from `current`."""
    return [to for (frm, to), sides in TRANSITIONS.items() if frm == current and side in sides]


def check_transition(
    current: Status,
    target: Status,
    side: Side,
    *,
    roi_delivered: bool = False,
    blocked_by: int | None = None,
) -> None:
    """Raise WorkflowError unless `side` may move a deal from `current` to `target`.

    `roi_delivered` says whether the vendor has delivered the ROI model (needed to move an
    ROI request to proposal); `blocked_by` is the id of a protected registration that holds
    this deal's utility (a flagged deal cannot be approved while it does).
    """
    if current == target:
        raise WorkflowError(f"status: the deal is already {current.value}")
    sides = TRANSITIONS.get((current, target))
    if sides is None:
        allowed = ", ".join(s.value for s, _ in _from(current)) or "none (closed)"
        raise WorkflowError(
            f"status: cannot move from {current.value} to {target.value}; allowed: {allowed}"
        )
    if side not in sides:
        raise WorkflowError(
            f"status: only the {' or '.join(sorted(sides))} may move a deal "
            f"from {current.value} to {target.value}"
        )
    if (current, target) == (Status.ROI_REQUESTED, Status.PROPOSAL) and not roi_delivered:
        raise WorkflowError("status: the vendor has not delivered the ROI model yet")
    if target == Status.APPROVED and blocked_by is not None:
        raise WorkflowError(
            f"status: deal #{blocked_by} registered this utility first and is still "
            "protected; reject this registration or close that deal first"
        )


def _from(current: Status) -> list[tuple[Status, frozenset[Side]]]:
    return [(to, sides) for (frm, to), sides in TRANSITIONS.items() if frm == current]


# Legal-form words say nothing about which customer it is.
_NOISE: Final = frozenset(
    {"the", "of", "inc", "incorporated", "co", "company", "corp", "corporation", "llc", "ltd",
     "limited"}
)  # fmt: skip
_COOP: Final = re.compile(r"\bco\s*-?\s*op(?:erative)?\b")
KEY_LENGTH: Final = 120  # the deals table's column


def utility_key(name: str) -> str:
    """Normalise a utility's name so spelling, script and legal-form variants collide."""
    # A zero-width space separates words; other invisible format characters (soft hyphen,
    # joiners) sit inside a word. Then every script to ASCII by sound or shape (Cyrillic IE
    # is E, Ø is O, ß is ss, ﬃ is ffi), which NFKD alone dropped.
    visible = "".join(
        " " if c == "\u200b" else "" if unicodedata.category(c) == "Cf" else c for c in name
    )
    folded = anyascii(visible).lower().replace("&", " and ")
    folded = _COOP.sub(" cooperative ", folded)
    words = re.findall(r"[a-z0-9]+", folded)
    # Word order varies ("City of Riverton" / "Riverton, City of"), so the key is the
    # sorted set of words, cut to the column (names past it collide, and are flagged).
    return " ".join(sorted({w for w in words if w not in _NOISE}))[:KEY_LENGTH]


@dataclass(frozen=True, slots=True)
class Registration:
    """What conflict detection needs to know about one deal."""

    id: int
    utility_key: str
    distributor_id: str
    rep_id: int | None
    status: Status
    registered_at: datetime
    region: str = ""
    segment: str = ""

    def same_customer(self, other: Registration) -> bool:
        """Say whether two registrations name one customer (see the module's docstring)."""
        return self.utility_key == other.utility_key and (
            self.region == other.region or self.segment == other.segment == "iou"
        )


@dataclass(frozen=True, slots=True)
class ConflictView:
    """One deal's conflict situation."""

    conflict: bool
    protected: bool
    protected_by: int | None
    others: tuple[int, ...]
    protected_until: datetime | None


def _valid(reg: Registration) -> bool:
    return reg.status in OPEN or reg.status == Status.WON


def protected_registration(
    group: Sequence[Registration], now: datetime, window: timedelta = PROTECTION_WINDOW
) -> Registration | None:
    """Return the registration that holds a utility: a won deal, else the first open one in its window."""
    valid = sorted((r for r in group if _valid(r)), key=lambda r: (r.registered_at, r.id))
    for reg in valid:
        if reg.status == Status.WON:
            return reg
    for reg in valid:
        if reg.status in OPEN and now < reg.registered_at + window:
            return reg
    return None


def own_open_registration(
    deal: Registration, same_utility: Sequence[Registration]
) -> Registration | None:
    """Return the partner's own open registration of `deal`'s customer, if it has one."""
    return next(
        (
            r
            for r in sorted(same_utility, key=lambda r: r.id)
            if r.id != deal.id
            and r.distributor_id == deal.distributor_id
            and r.status in OPEN
            and deal.same_customer(r)
        ),
        None,
    )


def conflict_view(
    deal: Registration,
    same_utility: Sequence[Registration],
    now: datetime,
    window: timedelta = PROTECTION_WINDOW,
) -> ConflictView:
    """Describe `deal`'s conflict against the other registrations for the same utility."""
    group = [r for r in same_utility if deal.same_customer(r) and r.id != deal.id]
    others = tuple(sorted(r.id for r in group if _valid(r)))
    holder = protected_registration([deal, *group], now, window)
    until = (
        holder.registered_at + window
        if holder is not None and holder.status != Status.WON
        else None
    )
    return ConflictView(
        conflict=bool(others) and _valid(deal),
        protected=holder is not None and holder.id == deal.id,
        protected_by=holder.id if holder is not None and holder.id != deal.id else None,
        others=others,
        protected_until=until,
    )
