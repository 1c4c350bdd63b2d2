"""Time zone names from users are checked before use."""

from __future__ import annotations

import pytest

from app.domain.localtime import zone_named


@pytest.mark.parametrize("name", ["US", "America", "Mars/Olympus", "../etc/passwd", "", "a\x00b"])
def test_zone_named_refuses_what_is_not_a_zone(name: str) -> None:
    with pytest.raises(ValueError, match="not an IANA time zone"):
        zone_named(name)


def test_zone_named_accepts_a_zone() -> None:
    assert str(zone_named("America/Chicago")) == "America/Chicago"
