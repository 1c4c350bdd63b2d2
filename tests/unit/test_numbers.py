"""Whole numbers typed by people: ASCII digits only, never more than a 64-bit column holds."""

from __future__ import annotations

import pytest

from app.domain.numbers import whole_number


@pytest.mark.parametrize(
    ("text", "value"),
    [("7", 7), (" 42 ", 42), ("-5", -5), ("007", 7), ("9" * 18, int("9" * 18))],
)
def test_whole_numbers_are_read(text: str, value: int) -> None:
    assert whole_number(text) == value


@pytest.mark.parametrize(
    "text",
    ["", " ", "\u00b2", "\u0663", "--5", "+5", "1.0", "1e3", "9" * 19, "9" * 5000, "1 2", "0x10"],
)
def test_anything_else_is_none(text: str) -> None:
    assert whole_number(text) is None
