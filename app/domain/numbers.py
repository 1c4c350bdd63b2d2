"""Whole numbers typed by people: forms, query strings, ids in keys."""

from __future__ import annotations

import re
from typing import Final

MAX_ID: Final = 2**31 - 1  # ids are 32-bit INTEGER columns

# ASCII digits only: str.isdigit also accepts "²" and other digits int() refuses, and at
# most 18 of them, which every 64-bit column holds (int() itself refuses past 4,300).
_WHOLE: Final = re.compile(r"-?[0-9]{1,18}")


def whole_number(text: str) -> int | None:
    """Return `text` (surrounding spaces allowed) as an int, or None if it is not one."""
    stripped = text.strip()
    return int(stripped) if _WHOLE.fullmatch(stripped) else None
