"""Roles and tenant scopes: who may see which utilities (pure rules, no database)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """Portal roles, vendor side first."""

    VENDOR_ADMIN = "vendor_admin"
    VENDOR_SE = "vendor_se"
    DISTRIBUTOR_MANAGER = "distributor_manager"
    DISTRIBUTOR_REP = "distributor_rep"
    UTILITY_VIEWER = "utility_viewer"
    BUILDING_MANAGER = "building_manager"


ROLE_LABELS: dict[Role, str] = {
    Role.VENDOR_ADMIN: "Vendor admin",
    Role.VENDOR_SE: "Vendor sales engineer",
    Role.DISTRIBUTOR_MANAGER: "Distributor manager",
    Role.DISTRIBUTOR_REP: "Distributor rep",
    Role.UTILITY_VIEWER: "Utility viewer",
    Role.BUILDING_MANAGER: "Building manager",
}
_VENDOR = {Role.VENDOR_ADMIN, Role.VENDOR_SE}
_DISTRIBUTOR = {Role.DISTRIBUTOR_MANAGER, Role.DISTRIBUTOR_REP}
_UTILITY = {Role.UTILITY_VIEWER, Role.BUILDING_MANAGER}


class AccessError(ValueError):
    """Raise when a user's role and tenant do not fit together."""


@dataclass(frozen=True, slots=True)
class Scope:
    """The utilities a user may see: all of them, one distributor's, or one utility's."""

    everything: bool = False
    distributor_id: str | None = None
    utility_id: str | None = None

    def allows(self, utility_id: str, distributor_id: str) -> bool:
        """Return True if a utility sold by `distributor_id` is visible in this scope."""
        if self.everything:
            return True
        if self.utility_id is not None:
            return utility_id == self.utility_id
        return distributor_id == self.distributor_id

    def narrowed_to(self, utility_id: str, distributor_id: str) -> Scope:
        """Return this scope cut down to one utility it allows (never widened: else AccessError)."""
        if not self.allows(utility_id, distributor_id):
            raise AccessError(f"utility {utility_id!r} is outside this scope")
        return Scope(utility_id=utility_id)


def scope_for(role: str, distributor_id: str | None, utility_id: str | None) -> Scope:
    """Derive a user's scope from role and tenant, refusing incoherent combinations."""
    try:
        parsed = Role(role)
    except ValueError:
        raise AccessError(f"unknown role {role!r}") from None
    if parsed in _VENDOR:
        return Scope(everything=True)
    if parsed in _DISTRIBUTOR:
        if not distributor_id:
            raise AccessError(f"role {role} needs a distributor")
        return Scope(distributor_id=distributor_id)
    if parsed in _UTILITY:
        if not utility_id:
            raise AccessError(f"role {role} needs a utility")
        return Scope(utility_id=utility_id)
    raise AccessError(f"role {role} has no scope rule")  # pragma: no cover - enum is exhaustive
