"""Scenario versions: what changed between two complete input documents (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TOP = ("segment", "horizon_years", "discount_rate")
_FIELDS = ("value", "low", "high", "source")


def document_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """List every changed field as {"field", "from", "to"}; a first version lists nothing."""
    if before is None:
        return []
    changes: list[dict[str, Any]] = [
        {"field": key, "from": before.get(key), "to": after.get(key)}
        for key in _TOP
        if before.get(key) != after.get(key)
    ]
    old_inputs: Mapping[str, Any] = before.get("inputs", {})
    new_inputs: Mapping[str, Any] = after.get("inputs", {})
    for name in sorted(set(old_inputs) | set(new_inputs)):
        old, new = old_inputs.get(name, {}), new_inputs.get(name, {})
        changes.extend(
            {"field": f"inputs.{name}.{part}", "from": old.get(part), "to": new.get(part)}
            for part in _FIELDS
            if old.get(part) != new.get(part)
        )
    return changes
