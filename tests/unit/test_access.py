"""Roles and tenant scopes."""

from __future__ import annotations

import pytest

from app.domain.access import AccessError, Role, Scope, scope_for


@pytest.mark.parametrize(
    ("role", "distributor", "utility", "expected"),
    [
        ("vendor_admin", None, None, Scope(everything=True)),
        ("vendor_se", "northgrid", None, Scope(everything=True)),
        ("distributor_manager", "northgrid", None, Scope(distributor_id="northgrid")),
        ("distributor_rep", "prairiemeter", None, Scope(distributor_id="prairiemeter")),
        ("utility_viewer", None, "millbrook", Scope(utility_id="millbrook")),
        ("building_manager", "northgrid", "fedcenter", Scope(utility_id="fedcenter")),
    ],
)
def test_scope_for_each_role(
    role: str, distributor: str | None, utility: str | None, expected: Scope
) -> None:
    assert scope_for(role, distributor, utility) == expected


@pytest.mark.parametrize(
    ("role", "distributor", "utility", "message"),
    [
        ("distributor_rep", None, None, "needs a distributor"),
        ("utility_viewer", "northgrid", None, "needs a utility"),
        ("building_manager", None, "", "needs a utility"),
        ("superuser", None, None, "unknown role"),
    ],
)
def test_incoherent_users_are_refused(
    role: str, distributor: str | None, utility: str | None, message: str
) -> None:
    with pytest.raises(AccessError, match=message):
        scope_for(role, distributor, utility)


@pytest.mark.parametrize(
    ("scope", "utility", "distributor", "allowed"),
    [
        (Scope(everything=True), "glpl", "northgrid", True),
        (Scope(distributor_id="northgrid"), "glpl", "northgrid", True),
        (Scope(distributor_id="northgrid"), "cascade", "prairiemeter", False),
        (Scope(utility_id="millbrook"), "millbrook", "northgrid", True),
        (Scope(utility_id="millbrook"), "glpl", "northgrid", False),
    ],
)
def test_scope_allows(scope: Scope, utility: str, distributor: str, allowed: bool) -> None:
    assert scope.allows(utility, distributor) is allowed


def test_every_role_has_a_rule() -> None:
    for role in Role:
        tenant = "x"
        assert isinstance(scope_for(role.value, tenant, tenant), Scope)


@pytest.mark.parametrize(
    "scope",
    [Scope(everything=True), Scope(distributor_id="northgrid"), Scope(utility_id="glpl")],
)
def test_narrowing_to_a_visible_utility_keeps_only_that_utility(scope: Scope) -> None:
    narrow = scope.narrowed_to("glpl", "northgrid")
    assert narrow == Scope(utility_id="glpl")
    assert narrow.allows("glpl", "northgrid")
    assert not narrow.allows("atlantic", "northgrid")


@pytest.mark.parametrize(
    ("scope", "utility", "distributor"),
    [
        (Scope(distributor_id="northgrid"), "cascade", "pacific"),
        (Scope(utility_id="glpl"), "atlantic", "northgrid"),
        (Scope(), "glpl", "northgrid"),
    ],
)
def test_narrowing_never_widens_a_scope(scope: Scope, utility: str, distributor: str) -> None:
    with pytest.raises(AccessError, match="outside this scope"):
        scope.narrowed_to(utility, distributor)
